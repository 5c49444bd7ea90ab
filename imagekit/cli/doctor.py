"""`imagekit doctor`: what this host can build and run, and what to do about what it cannot."""

from __future__ import annotations

from imagekit import console
from imagekit.adapters.docker_engine import Engine
from imagekit.cli import options as o
from imagekit.cli.common import Args, load
from imagekit.cli.options import DEFAULT_MATRIX
from imagekit.stages.doctor import run_checks

HELP = "what this host can build and run"
OPTIONS = (o.MATRIX, o.ONLY)
MARK = {True: "ok", False: "FAIL", None: "--"}


def run(args: Args) -> int:
    matrix = load(args) if (args.matrix or DEFAULT_MATRIX.is_file()) else None
    images = matrix.select(args.only) if matrix else []
    # Engine() unprobed: an unreachable engine is one of the findings, not an error.
    checks = run_checks(images, Engine(), matrix.ci if matrix else None)
    for check in checks:
        console.info(f"{MARK[check.ok]:>4}  {check.name}: {check.detail}")
        if check.tip:
            console.info(f"      -> {check.tip}")
    return 1 if any(c.ok is False for c in checks) else 0
