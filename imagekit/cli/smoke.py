"""`imagekit smoke`: the smoke suite on this host, without an image (vets a GPU node)."""

from __future__ import annotations

import sys

from imagekit import console
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, load, require_smoke
from imagekit.cli.test import report
from imagekit.core.render import expectations, variant_drivers
from imagekit.errors import ConfigurationError
from imagekit.reports import ReportsDir
from imagekit.stages.test import smoke_host

HELP = "run the smoke suite on this host, without an image"
OPTIONS = (o.MATRIX, o.ONLY, o.REPORTS, o.REQUIRE_GPU, o.TIMEOUT)


def run(args: Args, use: Adapters) -> int:
    matrix = load(args)
    require_smoke(matrix)
    environment = {"IMAGEKIT_VARIANT_DRIVERS": variant_drivers(matrix.images)}
    if args.only:
        chosen = matrix.select(args.only)
        if len(chosen) != 1:
            raise ConfigurationError(
                f"--only selects {len(chosen)} images; on a host the suite checks one image's promises",
                tip="narrow --only to one image id, or leave it out to check the host alone",
            )
        environment |= expectations(chosen[0])
    console.info(f"running {matrix.smoke_dir} on this host with {sys.executable}")
    folder = ReportsDir(args.reports)
    outcome = smoke_host(
        matrix.smoke_dir, folder, use.host_runner, require_gpu=args.require_gpu, environment=environment, timeout=args.timeout
    )
    return report([outcome], folder, with_builds=False)
