"""The workspace of an end-to-end test session: its repository name, planted secret, matrix
overlays, reports folder, and how it runs imagekit."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_BASE = "imagekit-local/debian-python:bookworm-py3.11"
IMAGE_ID = "2.6.0-cu121-py3.11-runtime"


@dataclass
class Workspace:
    repo: str
    token: str
    matrices: list[str]
    reports: Path
    out: Path
    env: dict[str, str]

    def args(self, *extra: str) -> list[str]:
        return [*self.matrices, "--reports", str(self.reports), "--out", str(self.out), *extra]

    def interrupt(self, args: list[str], ready: Callable[[], bool], signum: int, what: str) -> tuple[int, str]:
        """Start imagekit, wait (up to 2 min) until ``ready()``, send ``signum``; its exit code and stderr."""
        proc = subprocess.Popen([sys.executable, "-m", "imagekit", *args], cwd=ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not ready() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert ready(), f"{what} never started"
            proc.send_signal(signum)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.communicate()
        return proc.returncode, stderr

    def imagekit(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "imagekit", *args], capture_output=True, text=True, cwd=ROOT, env=self.env, timeout=timeout
        )
