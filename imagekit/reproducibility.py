"""How far this host's builder can make two builds of one image the same, from its BuildKit version
(README "Reproducible builds"):

- file tree (BuildKit < 0.11, e.g. Engine 20.10's 0.8): the same files, byte for byte, but the times
  in layers and in the image config differ per build, so digests differ. `imagekit verify`
  compares file trees.
- timestamps (BuildKit >= 0.11): SOURCE_DATE_EPOCH (the last commit's time) also fixes the image
  config's and history's times; files that RUN steps write keep their build-time mtimes, so layer
  digests still differ. `verify` compares file trees.
- bit-for-bit (BuildKit >= 0.13, through buildx): `rewrite-timestamp=true` also clamps every file
  time in the new layers to SOURCE_DATE_EPOCH: the same image digest on every build, which
  `verify` then demands.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from .engine import Builder, Engine
from .errors import ImagekitError
from .facts import load, version_tuple

FILE_TREE, TIMESTAMPS, BIT_FOR_BIT = "file tree", "timestamps", "bit-for-bit"
_BUILDX_BUILDKIT = re.compile(r"^\s*Build[Kk]it(?: version)?:\s*v?(\d+\.\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Reproducibility:
    level: str
    buildkit: str | None  # major.minor; None when it could not be learnt
    source: str  # where the version came from

    @property
    def source_date_epoch(self) -> bool:
        return self.level != FILE_TREE

    @property
    def rewrite_timestamp(self) -> bool:
        return self.level == BIT_FOR_BIT

    def describe(self) -> str:
        buildkit = f"BuildKit {self.buildkit}" if self.buildkit else "BuildKit version unknown"
        what = {
            FILE_TREE: "equal file trees (no SOURCE_DATE_EPOCH support: image digests differ per build); "
            "BuildKit >= 0.13 with buildx reaches equal digests",
            TIMESTAMPS: "equal file trees and image times from SOURCE_DATE_EPOCH (file times in layers still differ: "
            "digests differ); BuildKit >= 0.13 with buildx reaches equal digests",
            BIT_FOR_BIT: "equal image digests (SOURCE_DATE_EPOCH with rewrite-timestamp)",
        }[self.level]
        return f"{self.level}: {what} ({buildkit}, from {self.source})"


def level_for(buildkit: str | None, kind: str) -> str:
    if buildkit is None:
        return FILE_TREE
    version = version_tuple(buildkit)
    if version >= (0, 13) and kind == "buildx":  # `docker build` without buildx has no exporter options
        return BIT_FOR_BIT
    return TIMESTAMPS if version >= (0, 11) else FILE_TREE


def engine_buildkit(engine_version: str) -> str | None:
    """The BuildKit an Engine release embeds; None for one older than any known."""
    try:
        release = version_tuple(".".join(engine_version.split("-")[0].split("+")[0].split(".")[:2]))
    except ValueError:
        return None
    known = sorted(load().engine_buildkit.items(), key=lambda kv: version_tuple(kv[0]))
    found = [buildkit for engine, buildkit in known if version_tuple(engine) <= release]
    return found[-1] if found else None


def _buildx_buildkit(builder: Builder) -> str | None:
    try:
        out = subprocess.run([builder.docker, "buildx", "inspect"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _BUILDX_BUILDKIT.search(out.stdout)
    return match.group(1) if out.returncode == 0 and match else None


def detect(builder: Builder, engine: Engine) -> Reproducibility:
    if builder.kind == "buildx":
        found = _buildx_buildkit(builder)
        if found is not None:
            return Reproducibility(level_for(found, builder.kind), found, "`docker buildx inspect`")
    try:
        version = str(engine.version().get("Version", ""))
    except ImagekitError:
        return Reproducibility(FILE_TREE, None, "no engine to ask")
    found = engine_buildkit(version)
    return Reproducibility(level_for(found, builder.kind), found, f"Docker Engine {version}")
