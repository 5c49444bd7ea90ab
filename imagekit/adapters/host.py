"""What this host has outside Docker: NVIDIA GPUs and driver, free disk, imagekit's cache folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    driver: str


def nvidia_gpus() -> list[Gpu] | None:
    """GPUs that nvidia-smi sees; None when there is no working nvidia-smi (no driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    gpus = []
    for line in out.stdout.strip().splitlines():
        index, name, driver = (part.strip() for part in line.split(",", 2))
        gpus.append(Gpu(int(index), name, driver))
    return gpus


def free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def cache_dir() -> Path:
    """Where imagekit caches what it learnt about this host (the builders' probed levels):
    $IMAGEKIT_CACHE, else $XDG_CACHE_HOME/imagekit, else ~/.cache/imagekit (scripts/make-local-base too)."""
    explicit = os.environ.get("IMAGEKIT_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imagekit"
