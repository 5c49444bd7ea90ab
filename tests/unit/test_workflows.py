"""The GitHub workflows: the three linters pass (GitHub's workflow schema, zizmor's security audit,
actionlint), the cells they read come from the matrix with every key they use, and the publish
gating is there in the workflow's structure."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT

from imagekit.core.cells import KEYS, TEST_KEYS

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
IMAGES = ROOT / ".github" / "workflows" / "images.yml"
TOOLS = ROOT / "tests" / "tools"


def workflow(path: Path = IMAGES) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as true
    return data


def test_there_are_the_two_workflows():
    assert [p.name for p in WORKFLOWS] == ["images.yml", "toolkit.yml"]


@pytest.mark.tool("check-jsonschema")
def test_workflows_match_githubs_workflow_schema(tools):
    out = subprocess.run(
        [*tools["check-jsonschema"], "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.tool("zizmor")
def test_workflows_pass_zizmors_security_audit_with_nothing_suppressed(tools):
    # The auditor persona reports what the default one hides as low-confidence; none is suppressed.
    out = subprocess.run(
        [*tools["zizmor"], "--offline", "--persona", "auditor", "--format", "plain", str(ROOT / ".github" / "workflows")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No findings to report" in out.stdout and "suppressed" not in out.stdout, out.stdout


@pytest.mark.tool("actionlint")
def test_workflows_pass_actionlint(tools):
    out = subprocess.run([*tools["actionlint"], *map(str, WORKFLOWS)], capture_output=True, text=True, cwd=TOOLS)
    assert out.returncode == 0, out.stdout + out.stderr


# The product's own matrix and overlay, on purpose: the workflow runs on them (like the golden
# Dockerfiles, this is the product's regression net, not a test of the CLI).
@pytest.mark.parametrize("matrices", [("matrix.yaml",), ("matrix.yaml", "overlays/local-debian.yaml")])
def test_every_key_the_workflow_reads_is_in_every_cell(imagekit, matrices):
    jobs = workflow()["jobs"]
    for fmt, job_names, keys in (("github", ("build", "promote"), KEYS), ("github-tests", ("test",), TEST_KEYS)):
        expressions = " ".join(re.findall(r"\$\{\{(.*?)\}\}", " ".join(json.dumps(jobs[j]) for j in job_names)))
        used = set(re.findall(r"\bmatrix\.([A-Za-z_][A-Za-z0-9_-]*)", expressions))
        assert used, "the workflow reads its cells"
        assert used <= set(keys), f"the workflow reads keys cells do not promise: {sorted(used - set(keys))}"
        out = imagekit("matrix", "list", "--format", fmt, *(a for m in matrices for a in ("--matrix", m)), cwd=ROOT)
        assert out.returncode == 0, out.stderr
        listed = json.loads(out.stdout)["include"]
        assert listed
        for cell in listed:
            assert used <= set(cell), (cell["id"], sorted(used - set(cell)))
            assert isinstance(cell["runs_on"], list) and isinstance(cell["timeout_minutes"], int)


def test_the_matrix_comes_from_the_plan_and_nothing_repeats_the_matrix_file():
    jobs = workflow()["jobs"]
    assert list(jobs) == ["plan", "build", "test", "promote"]
    assert jobs["build"]["needs"] == "plan" and jobs["test"]["needs"] == ["plan", "build"]
    for job in ("build", "test"):
        condition = " ".join(jobs[job]["if"].split())
        assert "needs.plan.outputs.any == 'true' && " in condition
        # A fork's pull request never reaches a self-hosted runner.
        assert "(github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository)" in condition
    for job in ("build", "promote"):
        assert jobs[job]["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.cells) }}"
    assert jobs["test"]["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.tests) }}"
    for job in ("build", "test", "promote"):
        assert jobs[job]["runs-on"] == "${{ matrix.runs_on }}"
    text = IMAGES.read_text()
    for repeated in ("cu118", "cu121", "2.6.0", "runtime", "devel", "nvidia-"):
        assert repeated not in text, f"the workflow names {repeated!r}, which is the matrix's to say"


def test_each_family_is_built_once_and_its_digests_tested_on_each_runner_class():
    jobs = workflow()["jobs"]
    build = {s.get("name", s.get("uses", "")): s for s in jobs["build"]["steps"]}
    assert build["Check the runner"]["run"] == "imagekit doctor" and build["Build"]["run"] == "imagekit build"
    assert build["Stage"]["run"] == "imagekit stage" and "steps.build.outcome != 'skipped'" in build["Stage"]["if"]
    assert build["Upload the staged digests"]["with"] == {"name": "staged-${{ matrix.id }}", "path": "reports/staged.json",
                                                          "if-no-files-found": "warn", "retention-days": 30}  # fmt: skip
    test = jobs["test"]
    assert test["env"]["IMAGEKIT_GPUS"] == "all" and test["env"]["IMAGEKIT_REQUIRE_GPU"] == "1"
    assert test["env"]["IMAGEKIT_RUNNER_CLASS"] == "${{ matrix.runner_class }}" and test["env"]["IMAGEKIT_STAGED"] == "staged/staged.json"
    steps = {s.get("name", s.get("uses", "")): s for s in test["steps"]}
    assert steps["Fetch the staged digests"]["with"] == {"name": "staged-${{ matrix.id }}", "path": "staged/"}
    assert steps["Test the staged digests"]["run"] == "imagekit test", "its options come from the job's IMAGEKIT_* variables"
    assert "!cancelled()" in test["if"], "a failed build of one family must not skip the others' tests"
    for job in ("build", "test"):
        steps = {s.get("name", s.get("uses", "")): s for s in jobs[job]["steps"]}
        assert steps["Upload the reports"]["if"] == "always()" and steps["Upload the reports"]["with"]["path"] == "reports/"
        assert steps["Clean the runner"]["if"] == "always()"
        assert jobs[job]["strategy"]["fail-fast"] is False, "one failing cell must not hide the others"


def test_promote_runs_only_for_pushes_to_the_default_branch_or_tags_after_every_test_job():
    data = workflow()
    promote = data["jobs"]["promote"]
    assert set(promote["needs"]) == {"plan", "build", "test"}, "after every build and test job"
    condition = " ".join(promote["if"].split())
    # After failed jobs too (one family's failure must not hold back the others): imagekit promote
    # refuses what a required class did not pass, from the recorded results themselves.
    assert condition.startswith("!cancelled() && needs.plan.result == 'success' && github.event_name == 'push' && (")
    assert "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)" in condition
    assert "startsWith(github.ref, 'refs/tags/')" in condition
    assert "always()" not in condition
    assert promote["concurrency"] == {"group": "imagekit-promote-${{ matrix.id }}", "cancel-in-progress": False}
    assert promote["environment"] == "registry"
    assert data["jobs"]["build"]["environment"] == data["jobs"]["test"]["environment"] == "staging"
    assert [s["run"] for s in promote["steps"] if s.get("name") == "Promote"] == ["imagekit promote"]
    # Pull requests and schedules run the workflow but never reach a job that can promote.
    assert {"pull_request", "schedule", "push"} <= set(data["on"])


def test_secrets_reach_only_the_registry_steps_and_no_job_can_write_to_the_repository():
    data = workflow()
    assert data["permissions"] == {"contents": "read"}
    # The staging credentials push untested images and their test results; the release ones only promote.
    # The signing key (and its password) reaches the steps that sign or check what they push or promote.
    signing = {("build", "Stage"), ("test", "Test the staged digests"), ("promote", "Promote")}
    allowed = {
        ("build", "Log BuildKit in to the build cache"): "STAGING",
        ("build", "Stage"): "STAGING",
        ("test", "Test the staged digests"): "STAGING",
        ("promote", "Promote"): "REGISTRY",
    }
    for name, job in data["jobs"].items():
        assert "permissions" not in job, name
        for step in job["steps"]:
            text = json.dumps(step)
            where = (name, step.get("name"))
            assert ("secrets." in text) == (where in allowed), where
            if where in allowed:
                assert set(re.findall(r"secrets\.(\w+)", text)) == {
                    f"IMAGEKIT_{allowed[where]}_USER",
                    f"IMAGEKIT_{allowed[where]}_PASSWORD",
                    *(("IMAGEKIT_SIGNING_KEY", "IMAGEKIT_SIGNING_PASSWORD") if where in signing else ()),
                }, where
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), f"{step['uses']}: pin actions by commit"


def test_the_toolkit_workflow_runs_ci_run_on_a_hosted_runner():
    data = workflow(ROOT / ".github" / "workflows" / "toolkit.yml")
    (job,) = data["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest" and job["container"]["image"].startswith("debian:bookworm@sha256:")
    assert job["steps"][-1]["run"] == "bash .ci/run" and job["steps"][-1]["env"] == {"CI": "true"}
