"""`imagekit verify`: rebuild images without the build cache and compare them with the built ones."""

from __future__ import annotations

import argparse

from imagekit import console
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, conclude, current_lock, engine, load, lock_path, rendered, require_compression
from imagekit.reports import ReportsDir
from imagekit.stages import reproducibility
from imagekit.stages.build import BuildRun
from imagekit.stages.verify import verify_images

HELP = "rebuild images without the build cache and compare their file trees"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.OUT, o.REPORTS)
SHOWN = 50  # differences per image on the terminal; all of them are in the record


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image id or glob, e.g. 2.6.0-cu121-py3.11-runtime")


def run(args: Args, use: Adapters) -> int:
    matrix = load(args)
    images = matrix.select([*args.only, *args.images])
    found = rendered(matrix, images, current_lock(matrix, images, lock_path(args, matrix)))
    docker, builder, runner = engine(use), use.builder(use.probe), use.runner()
    repro = reproducibility.detect(builder, docker, runner)
    require_compression(found, repro)
    console.info(f"engine: {docker.describe_store()}; reproducibility on this builder: {repro.describe()}")
    folder = ReportsDir(args.reports)
    provenance = use.provenance(matrix.files[0].parent, matrix.source)
    outcomes = verify_images(found, BuildRun(docker, builder, runner, provenance, args.out, folder, reproducibility=repro))
    for x in outcomes:
        for d in x.differences[:SHOWN]:
            console.info(f"{x.image_id}: {d.path}: {d.what}")
        if len(x.differences) > SHOWN:
            console.info(f"{x.image_id}: … {len(x.differences) - SHOWN} more in {folder.verify_record(x.image_id)}")
    return conclude(
        "verify summary",
        ["time", "detail"],
        [(x.image_id, x.state, [f"{x.seconds:.0f}s", x.message]) for x in outcomes],
        failed="did not rebuild to the same content",
        tip=f"the differing paths are listed above and in {folder.verify_record('<image>')}",
    )
