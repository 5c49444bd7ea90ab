"""The project's git repository: the revision, remote and commit time an image records."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from imagekit.core.provenance import LAYER_EPOCH, Provenance, public_url


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def collect(matrix_dir: Path, source: str | None) -> Provenance:
    revision = _git(matrix_dir, "rev-parse", "HEAD")
    if revision and _git(matrix_dir, "status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    # SOURCE_DATE_EPOCH when the caller sets it (reproducible-builds.org convention), for the label
    # and the build; else the label says the last commit's time (now only outside git), and the
    # build gets the fixed LAYER_EPOCH.
    given = os.environ.get("SOURCE_DATE_EPOCH", "")
    epoch = given or _git(matrix_dir, "log", "-1", "--format=%ct")
    when = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit() else datetime.now(timezone.utc)
    when = when.replace(microsecond=0)
    return Provenance(
        revision=revision,
        source=source or public_url(_git(matrix_dir, "remote", "get-url", "origin")),
        created=when.isoformat().replace("+00:00", "Z"),
        epoch=int(when.timestamp()),
        layer_epoch=int(given) if given.isdigit() else LAYER_EPOCH,
    )
