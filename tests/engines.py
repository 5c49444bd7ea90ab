"""The Docker engines the integration tests run on (scripts/engines starts them), and which tests run
where: every integration test runs on the primary engine, the one users get by default (Engine 28.5,
buildx, containerd image store); a test marked `@pytest.mark.engines(...)` also runs on the others
it names, because what it checks differs by image store or engine generation. A test whose check is
the same on every store and that costs minutes on the primary engine's bit-for-bit builder (every
rebuild rewrites the whole image there) says `@pytest.mark.engines(CLASSIC, primary=False)`: it
runs on the classic store alone, and README "What is tested where" says so.

IMAGEKIT_TEST_ENGINES (space-separated) narrows the engines, e.g. to the one a developer started."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "engines"

CONTAINERD = "docker28-containerd"  # Engine 28.5 + buildx, containerd image store
CLASSIC = "docker28-classic"  # Engine 28.5 + buildx, classic overlay2 store
DOCKER20 = "docker20"  # Debian 12's Engine 20.10, its own CLI, no buildx
PRIMARY = CONTAINERD
ALL = (CONTAINERD, CLASSIC, DOCKER20)
# Each engine's builder, as imagekit's probe finds it (reproducibility.py): what the tests expect.
LEVEL = {CONTAINERD: "bit-for-bit", CLASSIC: "timestamps", DOCKER20: "file tree"}


def selected() -> tuple[str, ...]:
    wanted = os.environ.get("IMAGEKIT_TEST_ENGINES", "").split()
    unknown = [name for name in wanted if name not in ALL]
    if unknown:
        raise ValueError(f"IMAGEKIT_TEST_ENGINES names unknown engines {unknown}; known: {', '.join(ALL)}")
    return tuple(name for name in ALL if not wanted or name in wanted)


@cache
def environment(name: str) -> dict[str, str]:
    """What a client of engine ``name`` needs in its environment (DOCKER_HOST, its CLI first on
    PATH, DOCKER_CONFIG with buildx for Engine 28.5), as scripts/engines prints it."""
    out = subprocess.run([str(SCRIPT), "env", name], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def running(name: str) -> bool:
    out = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True, check=False)
    return f"{name}: running" in out.stdout.splitlines()
