"""The workspace of an end-to-end test session: its repository name, planted secret, matrix
overlays, reports folder, and how it runs imagekit."""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imagekit.adapters.docker_engine import Engine

ROOT = Path(__file__).resolve().parent.parent
LOCAL_BASE = "imagekit-local/debian-python:bookworm-py3.11"
IMAGE_ID = "2.6.0-cu121-py3.11-runtime"
EXTENSION_ID = f"{IMAGE_ID}-tracking"  # matrix.yaml's example extension of IMAGE_ID
JUPYTER_ID = f"{IMAGE_ID}-jupyter"
NO_JUPYTER = "no-jupyter.yaml"  # the session's overlay that drops the jupyter extension (conftest.py)


# Reset SIGINT to its default, then exec the same Python with the remaining arguments.
_DEFAULT_SIGINT_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


@dataclass
class Workspace:
    repo: str
    token: str
    matrices: list[str]
    reports: Path
    out: Path
    env: dict[str, str]
    # Build cache records that existed before the session: what its tests may drop is the rest.
    cache_before: set[str] = field(default_factory=set)
    engine_name: str = ""  # tests/engines.py

    def args(self, *extra: str) -> list[str]:
        """Matrices, lock and reports, which build, test, verify and publish all take (the render
        folder reaches the commands that take it through IMAGEKIT_OUT in ``env``)."""
        return [*self.matrices, "--reports", str(self.reports), *extra]

    @property
    def matrix_files(self) -> list[str]:
        """The --matrix flags alone, for commands that read no lock (doctor, manifest, diff)."""
        return [w for i, w in enumerate(self.matrices) if "--lock" not in self.matrices[max(i - 1, 0) : i + 1]]

    def nox(self, *sessions: str) -> list[str]:
        """`nox -s SESSIONS` with this workspace's own virtualenvs: test sessions on other xdist
        workers run nox at the same time, and two nox runs must not build one .nox folder."""
        return [sys.executable, "-m", "nox", "--envdir", str(self.out.parent / "nox"), "-s", *sessions]

    def interrupt(self, args: list[str], ready: Callable[[], bool], signum: int, what: str) -> tuple[int, str]:
        """Start imagekit, wait (up to 2 min) until ``ready()``, send ``signum``; its exit code and stderr."""
        # A shell's background job inherits SIGINT ignored, and Python then installs no Ctrl-C
        # handler: give imagekit the default disposition a terminal's foreground job has.
        argv = [sys.executable, "-c", _DEFAULT_SIGINT_EXEC, "-m", "imagekit", *args]
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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


def run_suite(
    engine: Engine,
    ws: Workspace,
    tmp_path: Path,
    *pytest_args: str,
    env: dict[str, str] | None = None,
    volumes: dict[str, dict[str, str]] | None = None,
    image: str | None = None,
) -> tuple[int | None, ET.Element | None]:
    """Smoke test files (paths inside the container) run in the built image under changed
    conditions; returns (exit code, report root)."""
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    content_tag = image or f"{ws.repo}:{IMAGE_ID}"
    result = engine.run_container(
        content_tag,
        ["sh", "-c", 'umask 0; exec python -m pytest -p no:cacheprovider --junitxml=/imagekit/out/j.xml "$@"', "s", *pytest_args],
        volumes={str(ROOT / "smoke"): {"bind": "/imagekit/smoke", "mode": "ro"}, str(out): {"bind": "/imagekit/out", "mode": "rw"},
                 **(volumes or {})},
        environment=env or {}, gpus=None, timeout=600,
    )  # fmt: skip
    report = out / "j.xml"
    return result.exit_code, ET.parse(report).getroot() if report.is_file() else None


def failures(root: ET.Element) -> dict[str, str]:
    found = {}
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            if case.find(tag) is not None:
                found[case.get("name")] = case.find(tag).get("message")
    return found
