"""The images workflow, run on this machine job by job and step by step (tests/workflow_runner.py):
the plan job's script, on a push and on pull requests against a base commit; then one family's
build job (install, doctor, build, stage into a local registry), its test jobs on two runner
classes (two engines, a CPU's GPU settings), and its promote job. What the workflow runs is
exercised, not only linted."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import engines
import pytest
import requests
from e2e_workspace import EXTENSION_ID, IMAGE_ID, ROOT, Workspace
from engines import environment
from helpers import find_tool, in_ci
from local_registry import LocalRegistry, serving
from workflow_runner import Context, JobRunner, StepResult, load

from imagekit.adapters.docker_engine import Engine
from imagekit.adapters.registry import MANIFEST_TYPES
from imagekit.core.evidence import result_tag

pytestmark = [pytest.mark.docker, pytest.mark.tool("git")]  # the workflow runs in a git checkout

WORKFLOW = load(ROOT / ".github" / "workflows" / "images.yml")
USER, PASSWORD = "imagekit-workflow", f"workflow-pw-{uuid.uuid4().hex}"
KEY_PASSWORD = f"workflow-key-pw-{uuid.uuid4().hex}"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip


def checkout(tmp: Path) -> Path:
    """This working tree (what git tracks, plus untracked files it does not ignore) as a fresh
    repository with one commit: a checkout of what is being tested, which steps may write into."""
    repo = tmp / "repo"
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, names.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def passed(results: list[StepResult], skipped: tuple[str, ...] = ()) -> None:
    for r in results:
        expected = "skipped" if r.name in skipped else "success"
        assert r.outcome == expected, f"{r.name}: {r.outcome}\n{r.output[-4000:]}"


def plan(repo: Path, tmp: Path, ctx: Context, overrides: dict[str, str] | None = None) -> list[dict[str, object]]:
    runner = JobRunner(WORKFLOW, "plan", ctx, repo, tmp / "runner-plan", tmp / "artifacts", overrides)
    passed(runner.run(timeout=900))
    ctx.needs_outputs["plan"] = runner.outputs()
    cells = json.loads(ctx.needs_outputs["plan"]["cells"])["include"]
    assert ctx.needs_outputs["plan"]["any"] == ("true" if cells else "false")
    return cells


def test_the_plan_lists_every_cell_on_a_push_and_only_the_changed_ones_on_a_pull_request(tmp_path):
    repo = checkout(tmp_path)
    everything = plan(repo, tmp_path / "push", Context("push"))
    assert [c["id"] for c in everything] == [
        "2.6.0-cu118-py3.11-runtime", "2.6.0-cu118-py3.11-devel", "2.6.0-cu121-py3.11-runtime", "2.6.0-cu121-py3.11-devel",
    ]  # fmt: skip
    base = git(repo, "rev-parse", "HEAD")
    assert plan(repo, tmp_path / "same", Context("pull_request", base_sha=base)) == [], "nothing changed: no cell runs"

    # A pull request that changes the extension template: only the cells that hold an extension.
    template = repo / "templates" / "Extension.Dockerfile.j2"
    template.write_text(template.read_text() + "# a change\n")
    git(repo, "commit", "-q", "-am", "change the extension template")
    changed = plan(repo, tmp_path / "pr", Context("pull_request", base_sha=base))
    assert [c["id"] for c in changed] == ["2.6.0-cu118-py3.11-runtime", "2.6.0-cu121-py3.11-runtime"]
    assert all(c["changed"] for c in changed)


@pytest.fixture(scope="module")
def registry(engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    with serving(engine, tmp_path_factory.mktemp("workflow-registry"), USER, PASSWORD) as reg:
        yield reg


def _staged_reference(artifacts: Path, image_id: str) -> str:
    """Where the build job staged ``image_id``, from the family's artifact (named for its base image)."""
    staged = json.loads((artifacts / f"staged-{IMAGE_ID}" / "staged.json").read_text())
    return next(e["reference"] for e in staged if e["image_id"] == image_id)


# On the classic store's worker: the primary engine's worker carries the containerd-only tests (zstd,
# the registry cache written), and the workflow's steps are the same on either store.
@pytest.mark.engines(engines.CLASSIC, primary=False)
@pytest.mark.tool("docker-registry", "htpasswd", "openssl", "cosign-3.1")
def test_a_family_is_built_once_tested_by_digest_on_two_runner_classes_and_promoted_through_the_workflows_own_steps(
    ws: Workspace, registry: LocalRegistry, tmp_path
):
    """Engine 28.5 (classic store, the engine that built the images) is the matrix's `gpu` class;
    Engine 20.10 (another data root, nothing of this workspace on it) is a second class,
    `legacy-20`, that pulls the staged digests. Promotion runs with no engine reachable."""
    if not engines.running(engines.DOCKER20):
        why = f"the second runner class is engine {engines.DOCKER20}, which is not running: `scripts/engines start {engines.DOCKER20}`"
        if in_ci():
            pytest.fail(why)
        pytest.skip(why)
    repo = checkout(tmp_path)
    site = tmp_path / "site.yaml"
    site.write_text(
        f"registry: {registry.host}/ml\n"
        "ci:\n"
        f"  staging: {registry.host}/staging\n"
        "  classes: {legacy-20: {runs_on: [self-hosted, linux, engine-20]}}\n"
        "  require: [gpu, legacy-20]\n"
        f"  build_cache: {registry.host}/staging\n"
    )
    matrices = [ws.matrices[i + 1] for i, a in enumerate(ws.matrices) if a == "--matrix"]
    # What this machine sets differently from a GPU runner: its engine, its matrix files (the local
    # base, the session's repository, the local registry), the session's lock, and a CPU's GPU settings.
    overrides = environment(ws.engine_name) | {
        "IMAGEKIT_MATRIX": " ".join(str(ROOT / m) if not Path(m).is_absolute() else m for m in [*matrices, str(site)]),
        "IMAGEKIT_LOCK": ws.matrices[ws.matrices.index("--lock") + 1],
        "IMAGEKIT_INDEX_E2E_TOKEN": ws.token,
    }
    # The site's signing key, as a repository secret holds it: the PEM cosign wrote, and its password.
    cosign = find_tool("cosign-3.1")
    assert cosign is not None
    keys = tmp_path / "keys"
    keys.mkdir()
    subprocess.run(
        [*cosign, "generate-key-pair"], cwd=keys, check=True, capture_output=True, env={**os.environ, "COSIGN_PASSWORD": KEY_PASSWORD}
    )
    pem = (keys / "cosign.key").read_text()
    overrides["IMAGEKIT_COSIGN"] = cosign[0]
    secrets = {
        "IMAGEKIT_STAGING_USER": USER,
        "IMAGEKIT_STAGING_PASSWORD": PASSWORD,
        "IMAGEKIT_REGISTRY_USER": USER,
        "IMAGEKIT_REGISTRY_PASSWORD": PASSWORD,
        "IMAGEKIT_SIGNING_KEY": pem,
        "IMAGEKIT_SIGNING_PASSWORD": KEY_PASSWORD,
    }
    ctx = Context("push", secrets=secrets)
    artifacts = tmp_path / "artifacts"
    (cell,) = plan(repo, tmp_path, ctx, overrides)
    tests = {c["runner_class"]: c for c in json.loads(ctx.needs_outputs["plan"]["tests"])["include"]}
    assert cell["images"] == f"{IMAGE_ID} {EXTENSION_ID}" and cell["runs_on"] == ["self-hosted", "linux"], "a build needs no GPU"
    assert cell["cache_registry"] == f"{registry.host}/staging"
    assert set(tests) == {"gpu", "legacy-20"} and tests["gpu"]["runs_on"] == ["self-hosted", "linux", "gpu", "nvidia-525"]
    assert tests["legacy-20"]["runs_on"] == ["self-hosted", "linux", "engine-20", "nvidia-525"]
    ctx.matrix = cell
    for job in ("build", "test"):
        assert ctx.condition(WORKFLOW["jobs"][job]["if"])
        fork = Context("pull_request", from_fork=True, needs_outputs=ctx.needs_outputs)
        assert not fork.condition(WORKFLOW["jobs"][job]["if"]), "a fork's pull request never reaches the self-hosted runners"

    # Build and stage: the images `built` made are unchanged; staging pushes them by content tag.
    build = JobRunner(WORKFLOW, "build", ctx, repo, tmp_path / "runner-build", artifacts, overrides)
    built_job = build.run()
    passed(built_job, skipped=("Lock against fresh bases and packages (weekly)",))
    # ci.build_cache: the build logs BuildKit in to the registry that keeps its cache, and uses it.
    login, build_step = (next(r for r in built_job if r.name == n) for n in ("Log BuildKit in to the build cache", "Build"))
    assert "Login Succeeded" in login.output and f"build cache: {registry.host}/staging, read only" in build_step.output
    assert "signing each digest" in next(r for r in built_job if r.name == "Stage").output
    base_ref, ext_ref = _staged_reference(artifacts, IMAGE_ID), _staged_reference(artifacts, EXTENSION_ID)
    digest = base_ref.rsplit("@", 1)[1]
    assert base_ref.startswith(f"{registry.host}/staging/{ws.repo}@sha256:") and IMAGE_ID not in registry.tags(f"staging/{ws.repo}")

    cpu = {"IMAGEKIT_GPUS": "none", "IMAGEKIT_REQUIRE_GPU": "0"}

    def test_job(runner_class: str, engine_env: dict[str, str], extra: dict[str, str] | None = None) -> list[StepResult]:
        ctx.matrix, ctx.outcomes = tests[runner_class], {}
        runner = JobRunner(
            WORKFLOW, "test", ctx, repo, tmp_path / f"runner-test-{runner_class}", artifacts, overrides | engine_env | cpu | (extra or {})
        )
        return runner.run()

    # Runner class `gpu`, on the engine that built the images.
    results = test_job("gpu", {})
    passed(results)
    text = "".join(r.output for r in results)
    assert f"recorded as {registry.host}/staging/{ws.repo}:{result_tag(digest, 'gpu')}" in text
    reports = artifacts / f"reports-{IMAGE_ID}-gpu"
    for image_id in (IMAGE_ID, EXTENSION_ID):
        report = (reports / "junit" / f"{image_id}.xml").read_text()
        assert "<failure" not in report and "<error" not in report, image_id
        assert "imagekit.runner-class" in report

    promote = WORKFLOW["jobs"]["promote"]
    for event in ("pull_request", "schedule"):
        assert not Context(event).condition(promote["if"]), event
    assert not Context("push", ref="refs/heads/feature").condition(promote["if"])
    no_engine = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}

    def promote_job() -> list[StepResult]:
        ctx.matrix, ctx.outcomes = cell, {}
        return JobRunner(WORKFLOW, "promote", ctx, repo, tmp_path / "runner-promote", artifacts, overrides | no_engine).run()

    # `legacy-20` has not run: promotion refuses, and tags nothing for release.
    refused = promote_job()
    assert refused[-2].name == "Promote" and refused[-2].outcome == "failure"
    assert "legacy-20: no result" in refused[-2].output and registry.tags(f"ml/{ws.repo}") == []

    other = environment(engines.DOCKER20)
    try:
        # A suite stopped at its timeout is a failed result, recorded and named by promotion.
        failed = test_job("legacy-20", other, {"IMAGEKIT_TIMEOUT": "1"})
        assert [r.outcome for r in failed if r.name == "Test the staged digests"] == ["failure"]
        assert "legacy-20: failed" in promote_job()[-2].output
        # A failed result is not memoized: the next run runs the suite on the pulled digest, and passes.
        results = test_job("legacy-20", other)
        passed(results)
        assert "passed before" not in "".join(r.output for r in results)
    finally:
        client = docker.DockerClient(base_url=other["DOCKER_HOST"], timeout=120)
        for ref in (base_ref, ext_ref):
            Engine(client).remove_image(ref)

    # Memoized: `gpu` passed these digests already; nothing runs, the recorded report is the evidence.
    again = test_job("gpu", {})
    passed(again)
    assert "passed before" in "".join(r.output for r in again)

    # Promote with no engine: manifests and mounts only; the release tags serve the staged digests.
    results = promote_job()
    passed(results)
    moved = int(results[-2].output.split("registry traffic: ", 1)[1].split(" ", 1)[0])
    assert moved < 1_000_000, f"promotion moved {moved} bytes: a layer went through the runner"
    tags = registry.tags(f"ml/{ws.repo}")
    for image_id, ref in ((IMAGE_ID, base_ref), (EXTENSION_ID, ext_ref)):
        assert image_id in tags, tags
        assert registry_digest(registry, f"ml/{ws.repo}", image_id) == ref.rsplit("@", 1)[1]
        assert {result_tag(ref.rsplit("@", 1)[1], c) for c in ("gpu", "legacy-20")} <= set(tags), "the evidence travels with the image"
    published = json.loads((artifacts / f"published-{IMAGE_ID}" / "published.json").read_text())
    assert [p["image_id"] for p in published] == [IMAGE_ID, EXTENSION_ID], "parent first, then its extension"
    assert {t["class"] for t in published[0]["tested_on"]} == {"gpu", "legacy-20"}
    assert any("Engine 20.10" in t["engine"] for t in published[0]["tested_on"])
    # Signed evidence: each required class's signed pass verified before promotion, and the signature
    # and attestations copied beside the release digest, where a consumer checks them.
    assert all(any(line.startswith("SBOM: CycloneDX") for line in p["evidence"]) for p in published)
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(
        json.dumps({"auths": {registry.host: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}})
    )
    checked = subprocess.run(
        [sys.executable, "-m", "imagekit", "check", f"{registry.host}/ml/{ws.repo}:{IMAGE_ID}", f"{registry.host}/ml/{ws.repo}:{EXTENSION_ID}",
         "--key", str(keys / "cosign.pub"), "--require-class", "gpu", "--require-class", "legacy-20"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "DOCKER_CONFIG": str(config), "IMAGEKIT_COSIGN": cosign[0]}, timeout=600,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("tests: passed on legacy-20") == 2 and "Engine 20.10" in checked.stdout
    private = "".join(pem.splitlines()[1:-1])[:40]
    logs = [r for r in results + refused + built_job if PASSWORD in r.output or KEY_PASSWORD in r.output or private in r.output]
    assert not logs, "no registry or key password, and no key material, reaches a log"


def registry_digest(registry: LocalRegistry, path: str, tag: str) -> str | None:
    r = requests.get(f"https://{registry.host}/v2/{path}/manifests/{tag}", auth=(USER, PASSWORD), headers={"Accept": MANIFEST_TYPES},
                     verify=str(registry.folder / "ca.crt"), timeout=30)  # fmt: skip
    return r.headers.get("Docker-Content-Digest") if r.ok else None
