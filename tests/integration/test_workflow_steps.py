"""The images workflow, run on this machine job by job and step by step (tests/workflow_runner.py):
the plan job's script, on a push and on pull requests against a base commit; then one cell's job
(install, doctor, build, test, reports, cleaning) on this engine with a CPU's GPU settings; then
the publish job against a local registry. What the workflow runs is exercised, not only linted."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from e2e_workspace import EXTENSION_ID, IMAGE_ID, ROOT, Workspace
from engines import environment
from local_registry import LocalRegistry, serving
from workflow_runner import Context, JobRunner, StepResult, load

from imagekit.adapters.docker_engine import Engine

pytestmark = [pytest.mark.docker, pytest.mark.tool("git")]  # the workflow runs in a git checkout

WORKFLOW = load(ROOT / ".github" / "workflows" / "images.yml")
USER, PASSWORD = "imagekit-workflow", f"workflow-pw-{uuid.uuid4().hex}"


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


@pytest.mark.tool("docker-registry", "htpasswd", "openssl")
def test_a_cell_builds_tests_and_publishes_through_the_workflows_own_steps(ws: Workspace, registry: LocalRegistry, tmp_path):
    repo = checkout(tmp_path)
    site = tmp_path / "site.yaml"
    site.write_text(f"registry: {registry.host}/ml\n")
    matrices = [ws.matrices[i + 1] for i, a in enumerate(ws.matrices) if a == "--matrix"]
    # What this machine sets differently from a GPU runner: its engine, its matrix files (the local
    # base, the session's repository, the local registry), the session's lock, and a CPU's GPU settings.
    overrides = environment(ws.engine_name) | {
        "IMAGEKIT_MATRIX": " ".join(str(ROOT / m) if not Path(m).is_absolute() else m for m in [*matrices, str(site)]),
        "IMAGEKIT_LOCK": ws.matrices[ws.matrices.index("--lock") + 1],
        "IMAGEKIT_INDEX_E2E_TOKEN": ws.token,
    }
    ctx = Context("push", secrets={"IMAGEKIT_REGISTRY_USER": USER, "IMAGEKIT_REGISTRY_PASSWORD": PASSWORD})
    (cell,) = plan(repo, tmp_path, ctx, overrides)
    assert cell["images"] == f"{IMAGE_ID} {EXTENSION_ID}" and cell["runs_on"][-1] == "nvidia-525"
    ctx.matrix = cell
    assert ctx.condition(WORKFLOW["jobs"]["images"]["if"])
    fork = Context("pull_request", from_fork=True, needs_outputs=ctx.needs_outputs)
    assert not fork.condition(WORKFLOW["jobs"]["images"]["if"]), "a fork's pull request never reaches the GPU runners"

    cpu = {"IMAGEKIT_GPUS": "none", "IMAGEKIT_REQUIRE_GPU": "0"}
    images = JobRunner(WORKFLOW, "images", ctx, repo, tmp_path / "runner-images", tmp_path / "artifacts", overrides | cpu)
    passed(images.run(), skipped=("Lock against fresh bases and packages (weekly)",))
    for image_id in (IMAGE_ID, EXTENSION_ID):
        report = (tmp_path / "artifacts" / f"reports-{IMAGE_ID}" / "junit" / f"{image_id}.xml").read_text()
        assert "<failure" not in report and "<error" not in report, image_id
    summary = images.summary.read_text()
    assert f"| `{IMAGE_ID}` |" in summary and f"| `{EXTENSION_ID}` |" in summary, "the smoke summary reaches the job summary"

    # The publish job: not for pull requests or schedules; for this push to main, after the cell passed.
    publish = WORKFLOW["jobs"]["publish"]
    for event in ("pull_request", "schedule"):
        assert not Context(event).condition(publish["if"]), event
    assert not Context("push", ref="refs/heads/feature").condition(publish["if"])
    assert ctx.condition(publish["if"])
    publisher = JobRunner(WORKFLOW, "publish", ctx, repo, tmp_path / "runner-publish", tmp_path / "artifacts", overrides)
    results = publisher.run()
    passed(results)
    published = json.loads((tmp_path / "artifacts" / f"published-{IMAGE_ID}" / "published.json").read_text())
    assert [p["image_id"] for p in published] == [IMAGE_ID, EXTENSION_ID], "parent first, then its extension"
    for record in published:
        assert record["digest"].startswith("sha256:")
    tags = registry.tags(f"ml/{ws.repo}")
    assert IMAGE_ID in tags and EXTENSION_ID in tags
    assert not [r.name for r in results if PASSWORD in r.output], "the registry password never reaches a log"
