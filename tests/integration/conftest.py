"""Fixtures the integration tests share: the engine, a workspace with its own repository name,
and the image built and tested once per test session by `nox -s build test`."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from e2e_workspace import LOCAL_BASE, ROOT, Workspace
from helpers import in_ci

from imagekit.engine import Engine
from imagekit.errors import EngineError


@pytest.fixture(scope="session")
def engine() -> Engine:
    engine = Engine()
    try:
        engine.version()
    except EngineError as exc:
        if in_ci():
            pytest.fail(f"CI must run the integration tests on a real Docker engine: {exc.message}")
        pytest.skip(f"no Docker engine here ({exc.message}); deselect with -m 'not docker'")
    return engine


@pytest.fixture(scope="session")
def ws(engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    subprocess.run([str(ROOT / "scripts" / "make-local-base"), LOCAL_BASE], check=True, timeout=900)
    tmp = tmp_path_factory.mktemp("e2e")
    run = uuid.uuid4().hex[:8]
    repo = f"imagekit-e2e/pytorch-{run}"
    token = f"planted-secret-{uuid.uuid4().hex}"
    # A credential in the index URL, as a site mirror would have: it must reach pip, and nothing else.
    overlay = tmp / "e2e.yaml"
    overlay.write_text(f'repository: {repo}\nindexes:\n  cu124: "https://imagekit-e2e:${{IMAGEKIT_E2E_TOKEN}}@pypi.org/simple"\n')
    env = {**os.environ, "IMAGEKIT_E2E_TOKEN": token, "GITHUB_STEP_SUMMARY": str(tmp / "step-summary.md")}
    # This session's own lock: the local base is made per host, so a committed lock cannot pin it.
    matrices = [
        "--matrix",
        "matrix.yaml",
        "--matrix",
        "overlays/local-debian.yaml",
        "--matrix",
        str(overlay),
        "--lock",
        str(tmp / "e2e.lock"),
    ]
    workspace = Workspace(repo, token, matrices, tmp / "reports", tmp / "build", env, engine.build_cache_ids())
    locked = workspace.imagekit("lock", *matrices, timeout=600)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    yield workspace

    for image in engine.client.images.list(name=repo):
        engine.remove_image(image.id)
    for image in engine.client.images.list(name=f"imagekit-e2e/no-shell-{run}"):
        engine.remove_image(image.id)
    # With the images gone, their layers stay on as build cache (the engine runs no GC): drop it.
    engine.drop_build_cache(workspace.cache_before)


@pytest.fixture(scope="session")
def built(ws: Workspace) -> subprocess.CompletedProcess[str]:
    """The main job, exactly as a user runs it: `nox -s build test -- ARGS`."""
    return subprocess.run(
        [*ws.nox("build", "test"), "--", *ws.args()],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ws.env,
        timeout=2400,
    )
