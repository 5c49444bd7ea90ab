"""nox sessions. The main job is `nox -s build test`; arguments after `--` go to imagekit, e.g.
`nox -s build test -- --matrix matrix.yaml --matrix site.yaml --only '*cu121*'`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "venv"
nox.options.sessions = ["build", "test"]

ROOT = Path(__file__).parent


def _install(session: nox.Session, extras: str = "") -> None:
    """Install imagekit (editable) once per virtualenv; again only when its dependencies change.
    Sessions that only drive the CLI then start in a second, not a pip resolve."""
    target = f".[{extras}]" if extras else "."
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + target.encode()).hexdigest()
    stamp = Path(session.virtualenv.location) / ".imagekit-installed"
    if not stamp.is_file() or stamp.read_text() != key:
        session.install("-e", target)
        stamp.write_text(key)


@nox.session(reuse_venv=True)
def build(session: nox.Session) -> None:
    """Build every image of the matrix with BuildKit (unchanged images are skipped)."""
    _install(session)
    session.run("imagekit", "build", *session.posargs)


@nox.session(reuse_venv=True)
def test(session: nox.Session) -> None:
    """Run the smoke suite inside every built image; JUnit and summary under reports/."""
    _install(session)
    session.run("imagekit", "test", *session.posargs)


def _given(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(f"{flag}=") for a in args)


# What `offline` builds on when no --matrix is given: the local Debian base instead of nvidia/cuda.
OFFLINE_MATRICES = ("matrix.yaml", "overlays/local-debian.yaml")


@nox.session(reuse_venv=True, default=False)
def offline(session: nox.Session) -> None:
    """The main job on a host without Docker Hub, in one command: make the local Debian base
    (debootstrap, so as root), pin this host's base in the lock, build, test. Arguments after `--`
    go to lock, build and test alike (--matrix, --only, --lock); with no --matrix it builds
    matrix.yaml + overlays/local-debian.yaml with a copy of that overlay's lock in .nox, so the
    committed lock is left as it is."""
    _install(session)
    session.run(str(ROOT / "scripts" / "make-local-base"), external=True)
    args = list(session.posargs)
    if not _given(args, "--matrix") and not os.environ.get("IMAGEKIT_MATRIX"):
        args = [f"--matrix={m}" for m in OFFLINE_MATRICES] + args
        if not _given(args, "--lock"):
            # A local base is made per host: its pin follows this host's image, in a copy.
            lock = Path(session.create_tmp()) / "local-debian.lock"
            lock.write_bytes((ROOT / "overlays" / "local-debian.lock").read_bytes())
            args.append(f"--lock={lock}")
    for command in ("lock", "build", "test"):
        session.run("imagekit", command, *args)


@nox.session(reuse_venv=True, default=False)
def publish(session: nox.Session) -> None:
    """Push the tested images to the matrix's registry (refuses any image without a passing report)."""
    _install(session)
    session.run("imagekit", "publish", *session.posargs)


@nox.session(reuse_venv=True, default=False)
def tests(session: nox.Session) -> None:
    """The toolkit's own test suite: unit tests, and integration tests on the real Docker engine."""
    _install(session, "test")
    # One worker per Docker engine (tests/engines.py): loadgroup keeps each engine's tests on one
    # worker, where they share one built image, and the engines build side by side. --durations:
    # where the time went, in every CI log.
    session.run("pytest", "-n", "3", "--dist", "loadgroup", "--durations=40", *session.posargs)


@nox.session(reuse_venv=True, default=False)
def lint(session: nox.Session) -> None:
    """ruff on the code, the committed lock against the matrix, hadolint on every rendered Dockerfile."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("imagekit", "lock", "--check", "--matrix", "matrix.yaml", "--matrix", "overlays/local-debian.yaml")
    out = Path(session.create_tmp()) / "rendered"
    session.run("imagekit", "render", "--out", str(out), silent=True)
    dockerfiles = sorted(str(p) for p in out.glob("*/Dockerfile"))
    session.run("hadolint", "--config", "templates/hadolint.yaml", *dockerfiles)
