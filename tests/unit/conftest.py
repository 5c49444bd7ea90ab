"""Unit tests are pure and run in this one process: no Docker engine, no processes. The CLI runs in
process too (`imagekit` fixture), and what a command would learn from a host tool comes from a
fake handed to it (adapters.host.Probe). A test that must start a process says so: a
`@pytest.mark.subprocess` mark with its reason, or `@pytest.mark.tool(name)` for an external tool
(tests/conftest.py), which lets it start that tool and no other."""

from __future__ import annotations

import _posixsubprocess
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imagekit.cli import main
from imagekit.cli.common import Adapters

ROOT = Path(__file__).resolve().parent.parent.parent
MATRICES = ROOT / "tests" / "matrices"


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests are pure: any stray call to a Docker engine fails loudly instead of passing."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/unit-tests-must-not-use-docker.sock")


class ProcessBlocked(RuntimeError):
    """A unit test tried to start a process. A RuntimeError, so that code which handles a missing
    tool (OSError) does not mistake it for one; swallowed anyway, the test still fails."""


# Every way a process starts: subprocess (and os.popen, asyncio, which use it), and the os calls
# below it. Popen itself is checked first, for the clearest message.
_OS_CALLS = ("system", "posix_spawn", "posix_spawnp", "fork", "forkpty", "execv", "execve")


@pytest.fixture(autouse=True)
def _no_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Yields the processes it refused: a test of this rule clears the list it expected."""
    if request.node.get_closest_marker("subprocess"):
        yield []
        return
    allowed = {Path(argv[0]).name for argv in request.getfixturevalue("tools").values()}  # tests/conftest.py
    started: list[str] = []
    inside = threading.local()  # within a Popen of an allowed tool: its own fork/exec go ahead

    def refuse(what: str) -> ProcessBlocked:
        started.append(what)
        return ProcessBlocked(
            f"a unit test started a process: {what}. Call imagekit.cli.main in process (the `imagekit` fixture), hand the "
            "code a fake (adapters.host.Probe), or mark the test @pytest.mark.tool(name) for an external tool, or "
            "@pytest.mark.subprocess with the reason it needs a process"
        )

    real_init = subprocess.Popen.__init__

    def popen_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        program = kwargs.get("executable") or (args if isinstance(args, str | bytes | os.PathLike) else (list(args) or [""])[0])
        words = os.fsdecode(program).split() if kwargs.get("shell") else [os.fsdecode(program)]
        if words and Path(words[0]).name in allowed:
            inside.ok = True
            try:
                return real_init(self, args, *rest, **kwargs)
            finally:
                inside.ok = False
        raise refuse(f"subprocess.Popen({args!r})")

    def guard(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if getattr(inside, "ok", False):
                return real(*args, **kwargs)
            raise refuse(f"{name}{tuple(args)[:2]!r}")

        return call

    monkeypatch.setattr(subprocess.Popen, "__init__", popen_init)
    monkeypatch.setattr(_posixsubprocess, "fork_exec", guard("_posixsubprocess.fork_exec", _posixsubprocess.fork_exec))
    for name in _OS_CALLS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, guard(f"os.{name}", getattr(os, name)))
    yield started
    if started:  # raised, and caught by the code under test
        pytest.fail(f"a unit test started {len(started)} process(es), blocked: {', '.join(started)}", pytrace=False)


@dataclass(frozen=True)
class Ran:
    """What `imagekit ARGV` did, shaped like the subprocess.CompletedProcess it replaces."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def imagekit(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Ran]:
    """``imagekit(*argv, cwd=..., adapters=...)``: the command, in this process (`main(argv,
    adapters)`: the real adapters unless fakes are given), with what it wrote to stdout and stderr. It runs in ``cwd``, by default an empty folder where no matrix.yaml is
    found, so a test names the --matrix it means; and without the IMAGEKIT_* variables of the
    environment pytest runs in (CI sets some), so a test sets those it means (monkeypatch.setenv)."""
    for name in [n for n in os.environ if n.startswith("IMAGEKIT_")]:
        monkeypatch.delenv(name)
    folder = tmp_path / "cwd"
    folder.mkdir()

    def run(*argv: str, cwd: Path | None = None, adapters: Adapters | None = None) -> Ran:
        capsys.readouterr()  # what came before is not this command's
        handler = signal.getsignal(signal.SIGTERM)  # main() installs its own; give pytest its back
        with monkeypatch.context() as m:
            m.chdir(cwd or folder)
            try:
                rc = main(list(argv), adapters)
            finally:
                signal.signal(signal.SIGTERM, handler)
        captured = capsys.readouterr()
        return Ran(rc, captured.out, captured.err)

    return run
