"""What this host has outside Docker: NVIDIA GPUs and driver, free disk, imagekit's cache folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    driver: str


# Runs a host tool (argv[0] a name on PATH or a path) and returns its output, or None when it is
# missing or does not run. Tests hand the probing functions a fake instead of starting processes.
Probe = Callable[[list[str]], "subprocess.CompletedProcess[str] | None"]


def run_probe(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    """The real probe: ``argv`` run with its text output captured, 30 s at most."""
    found = shutil.which(argv[0])
    if found is None:
        return None
    try:
        return subprocess.run([found, *argv[1:]], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


def run_logged(argv: list[str], environment: dict[str, str], log: IO[str], timeout: float) -> int | None:
    """``argv`` with this environment plus ``environment``, its output into ``log``: its exit code,
    or None when it was stopped at ``timeout`` seconds."""
    try:
        return subprocess.run(
            argv, env={**os.environ, **environment}, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
        ).returncode
    except subprocess.TimeoutExpired:
        return None


def nvidia_gpus(probe: Probe | None = None) -> list[Gpu] | None:
    """GPUs that nvidia-smi sees; None when there is no working nvidia-smi (no driver)."""
    out = (probe or run_probe)(["nvidia-smi", "--query-gpu=index,name,driver_version", "--format=csv,noheader"])
    if out is None or out.returncode != 0:
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
