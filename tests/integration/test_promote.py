"""Build once, test the staged digest on two runner classes, promote without moving a layer — on real
engines and a real registry (Debian's docker-registry on loopback, htpasswd + TLS).

The engine that built the image (Engine 28.5, containerd store) stages it and is one runner class;
Engine 20.10 (classic store, another data root) is the other: it has never built anything of this
workspace and pulls the staged digest. Promotion runs with no engine reachable at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import docker
import engines
import pytest
import requests
from e2e_workspace import EXTENSION_ID, IMAGE_ID, ROOT, Workspace
from local_registry import LocalRegistry, serving

from imagekit.adapters.docker_engine import Engine
from imagekit.adapters.registry import MANIFEST_TYPES
from imagekit.core.evidence import result_tag

pytestmark = [pytest.mark.docker, pytest.mark.tool("docker-registry", "htpasswd", "openssl")]

USER = "imagekit-stage"
PASSWORD = f"stage-pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def registry(engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    with serving(engine, tmp_path_factory.mktemp("stage-registry"), USER, PASSWORD) as reg:
        yield reg


@pytest.fixture(scope="module")
def other_engine():
    """Engine 20.10 as a second runner class: its own store, nothing of this workspace on it."""
    if not engines.running(engines.DOCKER20):
        why = f"the second runner class is engine {engines.DOCKER20}, which is not running: `scripts/engines start {engines.DOCKER20}`"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return engines.environment(engines.DOCKER20)


class Flow:
    def __init__(self, ws: Workspace, registry: LocalRegistry, folder) -> None:
        self.ws, self.registry, self.folder = ws, registry, folder
        overlay = folder / "ci.yaml"
        overlay.write_text(
            "ci:\n"
            f"  staging: {registry.host}/staging\n"
            "  classes:\n"
            "    builder-28: {runs_on: [self-hosted, linux, engine-28]}\n"
            "    legacy-20: {runs_on: [self-hosted, linux, engine-20]}\n"
            "  require: {'*': [builder-28, legacy-20]}\n"
        )
        self.matrices = [*ws.matrices, "--matrix", str(overlay)]
        self.reports = folder / "reports"
        self.env = {**ws.env, "IMAGEKIT_REGISTRY_USER": USER, "IMAGEKIT_REGISTRY_PASSWORD": PASSWORD}

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "imagekit", *args], capture_output=True, text=True, cwd=ROOT,
                              env={**self.env, **(env or {})}, timeout=timeout)  # fmt: skip

    def test(
        self, runner_class: str, *extra: str, env: dict[str, str] | None = None, reports: str = ""
    ) -> subprocess.CompletedProcess[str]:
        folder = self.folder / (reports or f"reports-{runner_class}")
        folder.mkdir(exist_ok=True)
        (folder / "staged.json").write_bytes((self.reports / "staged.json").read_bytes())  # as a CI artifact hands it on
        return self.run("test", *self.matrices, "--only", IMAGE_ID, "--reports", str(folder), "--staged", str(folder / "staged.json"),
                        "--runner-class", runner_class, "--gpus", "none", *extra, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def flow(built, ws, registry, tmp_path_factory) -> Flow:
    assert built.returncode == 0, built.stderr[-3000:]
    return Flow(ws, registry, tmp_path_factory.mktemp("flow"))


def test_build_once_test_the_digest_on_two_runner_classes_then_promote(flow, registry, engine, other_engine, ws):
    # Stage: the built images, untested, under their immutable tags alone.
    staged_run = flow.run("stage", *flow.matrices, "--reports", str(flow.reports))
    assert staged_run.returncode == 0, staged_run.stdout + staged_run.stderr
    staged = {e["image_id"]: e for e in json.loads((flow.reports / "staged.json").read_text())}
    assert set(staged) == {IMAGE_ID, EXTENSION_ID}
    base = staged[IMAGE_ID]
    digest = base["reference"].rsplit("@", 1)[1]
    assert base["reference"] == f"{registry.host}/staging/{ws.repo}@{digest}"
    assert staged[EXTENSION_ID]["parent"] == base["reference"]
    assert registry.tags(f"staging/{ws.repo}") == sorted(f"{i}-{e['content_id'][:12]}" for i, e in staged.items())

    # Runner class 1, the build host itself.
    first = flow.test("builder-28")
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"recorded as {registry.host}/staging/{ws.repo}:{result_tag(digest, 'builder-28')}" in first.stdout + first.stderr

    # Promotion refused while the second class has no result: nothing tagged for release.
    refused = flow.run(
        "promote", *flow.matrices, "--reports", str(flow.reports), "--only", IMAGE_ID, "--registry", f"{registry.host}/release"
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"legacy-20: no result for {digest[:19]}" in refused.stdout + refused.stderr
    assert registry.tags(f"release/{ws.repo}") == []

    # Runner class 2 on Engine 20.10, which pulls the digest. A suite stopped by its timeout is a
    # failed result, recorded, and promotion names it.
    try:
        failed = flow.test("legacy-20", "--timeout", "1", env=other_engine, reports="reports-legacy-fail")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "recorded as" in failed.stdout + failed.stderr
        refused = flow.run(
            "promote", *flow.matrices, "--reports", str(flow.reports), "--only", IMAGE_ID, "--registry", f"{registry.host}/release"
        )
        assert refused.returncode == 1 and "legacy-20: failed" in refused.stdout + refused.stderr, refused.stdout
        # A failed result is not memoized: the next run runs the suite, and passes.
        second = flow.test("legacy-20", env=other_engine)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "passed before" not in second.stdout
    finally:
        Engine(docker.DockerClient(base_url=other_engine["DOCKER_HOST"], timeout=120)).remove_image(base["reference"])

    # Memoized: the builder class passed this digest already; nothing runs, the evidence is the report.
    again = flow.test("builder-28", reports="reports-again")
    assert again.returncode == 0 and "passed before" in again.stdout, again.stdout + again.stderr
    assert "not run again" in again.stdout + again.stderr
    assert (flow.folder / "reports-again" / "logs" / f"test-{IMAGE_ID}.log").exists() is False

    # Promote with no engine at all: manifests and mounts only; the release tags serve the staged digest.
    no_engine = {"DOCKER_HOST": f"unix://{flow.folder}/no-engine.sock"}
    done = flow.run(
        "promote",
        *flow.matrices,
        "--reports",
        str(flow.reports),
        "--only",
        IMAGE_ID,
        "--registry",
        f"{registry.host}/release",
        env=no_engine,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    moved = int((done.stdout + done.stderr).split("registry traffic: ", 1)[1].split(" ", 1)[0])
    assert moved < 1_000_000, f"promotion moved {moved} bytes: a layer went through the runner"
    content_tag = f"{IMAGE_ID}-{base['content_id'][:12]}"
    assert registry.tags(f"release/{ws.repo}") == sorted(
        [IMAGE_ID, content_tag, result_tag(digest, "builder-28"), result_tag(digest, "legacy-20")]
    )
    for tag in (IMAGE_ID, content_tag):
        assert registry_digest(registry, f"release/{ws.repo}", tag) == digest
    published = json.loads((flow.reports / "published.json").read_text())
    assert [p["image_id"] for p in published] == [IMAGE_ID]
    assert {t["class"] for t in published[0]["tested_on"]} == {"builder-28", "legacy-20"}
    assert any("Engine 20.10" in t["engine"] for t in published[0]["tested_on"])
    # Again: unchanged, still no layer moved.
    again = flow.run(
        "promote",
        *flow.matrices,
        "--reports",
        str(flow.reports),
        "--only",
        IMAGE_ID,
        "--registry",
        f"{registry.host}/release",
        env=no_engine,
    )
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stdout + again.stderr


def registry_digest(registry: LocalRegistry, path: str, tag: str) -> str | None:
    r = requests.get(f"https://{registry.host}/v2/{path}/manifests/{tag}", auth=(USER, PASSWORD), headers={"Accept": MANIFEST_TYPES},
                     verify=str(registry.folder / "ca.crt"), timeout=30)  # fmt: skip
    return r.headers.get("Docker-Content-Digest") if r.ok else None
