"""`imagekit doctor`: what this host can build and run, and what to do about what it cannot."""

from __future__ import annotations

import os

from imagekit import console
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, load, signer
from imagekit.cli.options import DEFAULT_MATRIX
from imagekit.errors import RunFailed
from imagekit.stages.doctor import run_checks, signing_check

HELP = "what this host can build and run"
OPTIONS = (o.MATRIX, o.ONLY)


def _cosign(use: Adapters) -> str:
    """The signer publish would use (its key checked), as it describes itself."""
    found = signer(use, None)
    if found is None:
        return "no signer"
    try:
        return found.describe()
    finally:
        found.close()


def run(args: Args, use: Adapters) -> int:
    matrix = load(args) if (args.matrix or DEFAULT_MATRIX.is_file()) else None
    images = matrix.select(args.only) if matrix else []
    # The engine unreached: an unreachable engine is one of the findings, not an error.
    checks = run_checks(images, use.engine(), lambda: use.builder(use.probe), use.runner(), use.probe, matrix.ci if matrix else None)
    checks.append(signing_check(bool(os.environ.get("IMAGEKIT_SIGNING_KEY")), lambda: _cosign(use)))
    for check in checks:
        console.info(f"{check.state:>4}  {check.name}: {check.detail}")
        if check.tip:
            console.info(f"      -> {check.tip}")
    failed = [c.name for c in checks if not c.state.ok]
    if failed:
        raise RunFailed(
            f"{len(failed)} of {len(checks)} check(s) failed: {', '.join(failed)}", tip="each failing line above says what to do"
        )
    return 0
