"""Fixtures the integration tests share: the engine (one of scripts/engines', see tests/engines.py),
a workspace with its own repository name, and the image built and tested once per test session
and engine by `nox -s build test`."""

from __future__ import annotations

import os
import subprocess
import uuid

import docker
import engines
import pytest
from e2e_workspace import LOCAL_BASE, NO_JUPYTER, ROOT, Workspace
from helpers import in_ci

from imagekit.adapters.docker_engine import Engine
from imagekit.errors import EngineError


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on a real engine runs on the primary one, and on those its `engines` mark adds;
    one engine's tests share one session-wide workspace and built image."""
    if "engine_name" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("engines")
    wanted = {*(marker.args if marker else ())}
    if marker is None or marker.kwargs.get("primary", True):
        wanted.add(engines.PRIMARY)
    # One xdist worker per engine (--dist loadgroup): its session fixtures build once, and the
    # engines build side by side.
    params = [pytest.param(name, id=name, marks=pytest.mark.xdist_group(name)) for name in engines.selected() if name in wanted]
    metafunc.parametrize("engine_name", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def engine_env(engine_name: str) -> dict[str, str]:
    """This process's environment pointed at the engine: what every imagekit, nox and docker
    subprocess of its tests runs with."""
    if not engines.running(engine_name):
        why = f"engine {engine_name} is not running: start it with `scripts/engines fetch && scripts/engines start {engine_name}`"
        if in_ci():
            pytest.fail(f"CI must run the integration tests on every engine: {why}")
        pytest.skip(f"{why}, or narrow IMAGEKIT_TEST_ENGINES")
    return {**os.environ, **engines.environment(engine_name)}


@pytest.fixture(scope="session")
def engine(engine_env: dict[str, str]) -> Engine:
    engine = Engine(docker.DockerClient(base_url=engine_env["DOCKER_HOST"], timeout=120))
    try:
        engine.version()
    except EngineError as exc:
        pytest.fail(f"the engine at {engine_env['DOCKER_HOST']} does not answer: {exc.message}")
    return engine


@pytest.fixture(scope="session")
def ws(engine: Engine, engine_env: dict[str, str], engine_name: str, tmp_path_factory: pytest.TempPathFactory):
    subprocess.run([str(ROOT / "scripts" / "make-local-base"), LOCAL_BASE], check=True, timeout=900, env=engine_env)
    tmp = tmp_path_factory.mktemp(f"e2e-{engine_name}")
    run = uuid.uuid4().hex[:8]
    repo = f"imagekit-e2e/pytorch-{run}"
    token = f"planted-secret-{uuid.uuid4().hex}"
    # A credential in the index URL, as a site mirror would have: it must reach pip, and nothing else.
    overlay = tmp / "e2e.yaml"
    overlay.write_text(f'repository: {repo}\nindexes:\n  cu124: "https://imagekit-e2e:${{IMAGEKIT_INDEX_E2E_TOKEN}}@pypi.org/simple"\n')
    env = {
        **engine_env,
        "IMAGEKIT_INDEX_E2E_TOKEN": token,
        "GITHUB_STEP_SUMMARY": str(tmp / "step-summary.md"),
        "IMAGEKIT_OUT": str(tmp / "build"),
    }
    # The jupyter extension is built and tested on one engine only, by test_jupyter_browser.py,
    # which leaves this overlay out: on every engine it would cost CI a third image each.
    no_jupyter = tmp / NO_JUPYTER
    no_jupyter.write_text("extensions:\n  jupyter: null\n")
    # This session's own lock: the local base is made per host, so a committed lock cannot pin it.
    matrices = [
        "--matrix",
        "matrix.yaml",
        "--matrix",
        "overlays/local-debian.yaml",
        "--matrix",
        str(overlay),
        "--matrix",
        str(no_jupyter),
        "--lock",
        str(tmp / "e2e.lock"),
    ]
    workspace = Workspace(repo, token, matrices, tmp / "reports", tmp / "build", env, engine.build_cache_ids(), engine_name)
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
    """The main job, exactly as a newcomer without Docker Hub runs it: `nox -s offline -- ARGS`
    (local base, lock, build, test; `nox -s build test` runs again in test_publish)."""
    return subprocess.run(
        [*ws.nox("offline"), "--", *ws.matrices],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**ws.env, "IMAGEKIT_REPORTS": str(ws.reports)},
        timeout=2400,
    )
