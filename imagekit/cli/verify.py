"""`imagekit verify`: rebuild images without the build cache and compare them with the built ones."""

from __future__ import annotations

import argparse

from imagekit import console
from imagekit.adapters.buildkit import find_builder
from imagekit.adapters.git import collect
from imagekit.adapters.secrets import pip_secrets
from imagekit.cli import options as o
from imagekit.cli.common import Args, conclude, current_lock, engine, load, lock_path, rendered
from imagekit.reports import ReportsDir
from imagekit.stages import reproducibility
from imagekit.stages.build import BuildRun
from imagekit.stages.verify import verify_one

HELP = "rebuild images without the build cache and compare their file trees"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.OUT, o.REPORTS)
SHOWN = 50  # differences per image on the terminal; all of them are in the record


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image id or glob, e.g. 2.6.0-cu121-py3.11-runtime")


def run(args: Args) -> int:
    matrix = load(args)
    images = matrix.select([*args.only, *args.images])
    found = rendered(matrix, images, current_lock(matrix, images, lock_path(args, matrix)))
    docker, builder = engine(), find_builder()
    repro = reproducibility.detect(builder, docker)
    console.info(f"engine: {docker.describe_store()}; reproducibility on this builder: {repro.describe()}")
    folder = ReportsDir(args.reports)
    run = BuildRun(docker, builder, collect(matrix.files[0].parent, matrix.source), args.out, folder, reproducibility=repro)
    outcomes = []
    with pip_secrets({r.image.index_url for r in found}) as secrets:
        for r in found:
            outcomes.append(verify_one(r, run, secrets[r.image.index_url], folder))
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
