"""End to end on real Docker engines: `nox -s build test` builds a real torch 2.6.0 image with
BuildKit on a local Debian base, runs the smoke suite in it, and writes schema-valid JUnit.

Every test runs on Engine 28.5 with the containerd image store; those marked `engines(...)` also on
the classic store and on Engine 20.10 (tests/engines.py). Deselect locally with `-m 'not docker'`.
In CI (CI=true) a missing engine fails these tests. Each run uses its own repository name and
removes every image and container it made; the local base image is a cache kept by name
(scripts/make-local-base).
"""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from e2e_workspace import EXTENSION_ID, IMAGE_ID, LOCAL_BASE, ROOT, Workspace, failures, run_suite
from engines import ALL, CLASSIC, CONTAINERD, DOCKER20, LEVEL
from helpers import xmllint_schema

from imagekit.adapters.docker_engine import CONTAINER_LABEL, Engine
from imagekit.stages.verify import stamped

pytestmark = pytest.mark.docker

SMOKE_LABEL = f"{CONTAINER_LABEL}=smoke"


def smoke_containers(engine: Engine, ws: Workspace) -> list[str]:
    """Smoke containers of this workspace's images. Other test sessions (xdist workers) may run
    their own at the same time; those are theirs to clean up and check."""
    found = engine.client.containers.list(all=True, filters={"label": SMOKE_LABEL})
    return [c.id for c in found if c.attrs["Config"]["Image"].startswith(f"{ws.repo}:")]


@pytest.mark.engines(*ALL)
@pytest.mark.tool("xmllint")  # the reports against the JUnit schema
def test_nox_build_test_builds_and_smoke_tests_a_real_torch_image(built, ws, engine):
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-6000:]
    report = ws.reports / "junit" / f"{IMAGE_ID}.xml"
    for path in (report, ws.reports / "junit" / "build.xml", ws.reports / "junit.xml"):
        xmllint_schema(path)

    cases = list(ET.parse(report).getroot().iter("testcase"))
    outcome = {
        c.get("name"): (
            "skipped"
            if c.find("skipped") is not None
            else "failed"
            if c.find("failure") is not None or c.find("error") is not None
            else "passed"
        )
        for c in cases
    }
    assert outcome["test_torch_version"] == outcome["test_torch_cuda_build"] == outcome["test_cudnn_loads"] == "passed"
    assert "failed" not in outcome.values()
    # No GPU on this engine: GPU checks skip, each with the reason and the remedy.
    gpu_skips = [c.find("skipped").get("message") for c in cases if c.get("name") == "test_gpu_detected"]
    assert gpu_skips and "no GPU visible: run with --gpus all" in gpu_skips[0]

    merged = ET.parse(ws.reports / "junit.xml").getroot()
    assert [s.get("name") for s in merged.iter("testsuite")] == ["imagekit.build", IMAGE_ID, EXTENSION_ID]
    props = {p.get("name"): p.get("value") for p in merged.iter("property")}
    assert props["torch.cuda"] == "12.4" and props["torch.version"].startswith("2.6.0")
    # The full suite ran on CPU: the model trained, timings were recorded, schema-validly.
    assert outcome["test_training_learns"] == outcome["test_checkpoint_round_trips"] == outcome["test_cpu_forward_timing"] == "passed"
    assert float(props["timing.train.accuracy"]) >= 0.9 and float(props["timing.forward.cpu.b4.median_ms"]) > 0
    figures = json.loads((ws.reports / "artifacts" / IMAGE_ID / "timings.json").read_text())
    assert figures["train.device"] == "cpu" and figures["forward.cpu.b64.iterations"] >= 10
    assert (ws.reports / "artifacts" / IMAGE_ID / "audio-cnn.pt").is_file()
    summary = (ws.reports / "summary.md").read_text()
    assert f"| `{IMAGE_ID}` | built | passed |" in summary and "train.accuracy=" in summary
    assert summary in Path(ws.env["GITHUB_STEP_SUMMARY"]).read_text()
    assert smoke_containers(engine, ws) == []


@pytest.mark.engines(CLASSIC)
def test_image_is_tagged_labelled_non_root_and_holds_no_secret(built, ws, engine):
    assert built.returncode == 0
    attrs = engine.inspect_image(f"{ws.repo}:{IMAGE_ID}")
    assert attrs is not None
    labels = attrs["Config"]["Labels"]
    content_tag = f"{ws.repo}:{IMAGE_ID}-{labels['io.imagekit.content-id'][:12]}"
    assert content_tag in attrs["RepoTags"]
    # The smoke report names the exact content it tested (what publishing is gated on).
    report_props = {p.get("name"): p.get("value") for p in ET.parse(ws.reports / "junit" / f"{IMAGE_ID}.xml").iter("property")}
    assert report_props["imagekit.content-id"] == labels["io.imagekit.content-id"]
    assert labels["io.imagekit.torch"] == "2.6.0" and labels["io.imagekit.wheel"] == "cu124"
    assert labels["io.imagekit.cuda"] == "12.1.1" and labels["org.opencontainers.image.version"] == IMAGE_ID
    assert labels["org.opencontainers.image.created"] and labels["org.opencontainers.image.revision"]
    assert attrs["Config"]["User"] == "1000"
    assert "NVIDIA_VISIBLE_DEVICES=all" in attrs["Config"]["Env"]

    # The planted credential reached pip (the build pulled from that index) and nowhere else.
    history = json.dumps(engine.client.api.history(content_tag))
    log = (ws.reports / "logs" / f"build-{IMAGE_ID}.log").read_text()
    lock = Path(ws.matrices[ws.matrices.index("--lock") + 1]).read_text()
    for where, text in {"inspect": json.dumps(attrs), "history": history, "build log": log, "lock file": lock}.items():
        assert ws.token not in text, f"the index credential leaked into the image {where}"
    grep = engine.client.containers.run(
        content_tag,
        [
            "sh",
            "-c",
            f"grep -rlF -e '{ws.token}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev; ls /run/secrets 2>/dev/null; true",
        ],
        remove=True,
        user="0",
        labels={CONTAINER_LABEL: "e2e-scan"},
    )
    assert grep.decode().strip() == "", f"secret material found in the image's files: {grep.decode()}"


@pytest.mark.engines(*ALL)
def test_an_extension_is_built_on_its_parents_exact_content_and_runs_its_own_tests_too(built, ws, engine):
    assert built.returncode == 0
    parent, child = engine.inspect_image(f"{ws.repo}:{IMAGE_ID}"), engine.inspect_image(f"{ws.repo}:{EXTENSION_ID}")
    assert parent is not None and child is not None
    labels, parent_labels = child["Config"]["Labels"], parent["Config"]["Labels"]
    # Built FROM the parent: every parent layer, in order, then its own.
    assert child["RootFS"]["Layers"][: len(parent["RootFS"]["Layers"])] == parent["RootFS"]["Layers"]
    assert len(child["RootFS"]["Layers"]) > len(parent["RootFS"]["Layers"])
    assert labels["io.imagekit.base"] == parent["Id"], "the parent's image id is what the content id folds in"
    assert labels["io.imagekit.parent-content-id"] == parent_labels["io.imagekit.content-id"]
    assert labels["io.imagekit.parent"] == IMAGE_ID and labels["io.imagekit.extension"] == "tracking"
    parent_content_tag = f"{ws.repo}:{IMAGE_ID}-{parent_labels['io.imagekit.content-id'][:12]}"
    build_log = (ws.reports / "logs" / f"build-{EXTENSION_ID}.log").read_text()
    # The containerd store checks the digest beside the tag itself; the classic store cannot.
    pinned = f"{parent_content_tag}@{parent['Id']}" if ws.engine_name == CONTAINERD else parent_content_tag
    assert f"--build-arg IMAGEKIT_PARENT={pinned} " in build_log.splitlines()[0]
    assert child["Config"]["User"] == "1000" and "TRACKING_LOGDIR=/opt/runs" in child["Config"]["Env"]
    assert f"IMAGEKIT_IMAGE_ID={EXTENSION_ID}" in child["Config"]["Env"]

    # One report: the parent's whole smoke suite and the extension's tests, for this content.
    report = ET.parse(ws.reports / "junit" / f"{EXTENSION_ID}.xml").getroot()
    cases = {c.get("name"): c for c in report.iter("testcase")}
    for name in (
        "test_torch_version",
        "test_training_learns",
        "test_scalars_written_to_the_log_folder_read_back",
        "test_git_runs_for_run_provenance",
    ):
        assert cases[name].find("failure") is None and cases[name].find("error") is None and cases[name].find("skipped") is None, name
    props = {p.get("name"): p.get("value") for p in report.iter("property")}
    assert props["imagekit.content-id"] == labels["io.imagekit.content-id"]
    assert summary_row(ws.reports, EXTENSION_ID).startswith(f"| `{EXTENSION_ID}` | built | passed |")


def test_an_extension_cannot_swap_a_package_its_parent_was_tested_with(built, ws, tmp_path):
    assert built.returncode == 0
    overlay = tmp_path / "clash.yaml"
    # pytest (in the parent) depends on packaging: the parent's locked version is a constraint.
    overlay.write_text('extensions:\n  clash:\n    parent: runtime\n    packages: ["packaging==23.0"]\n')
    args = [*ws.matrices, "--matrix", str(overlay), "--lock", str(tmp_path / "clash.lock")]
    lock = ws.imagekit("lock", *args, timeout=600)
    assert lock.returncode == 1, lock.stdout + lock.stderr
    assert f"{IMAGE_ID}-clash: cannot resolve" in lock.stderr and "packaging" in lock.stderr
    assert not (tmp_path / "clash.lock").exists(), "a lock that failed for one image must not be half written"
    # `build` without a lock locks first, and stops where the lock does, building nothing.
    build = ws.imagekit("build", *args, "--only", "*-clash", "--reports", str(tmp_path / "reports"))
    assert build.returncode == 1 and f"no lock file {tmp_path / 'clash.lock'}: locking" in build.stderr, build.stderr
    assert f"{IMAGE_ID}-clash: cannot resolve" in build.stderr and not (tmp_path / "clash.lock").exists()
    assert not (tmp_path / "reports" / "junit").exists(), "nothing was built"
    locked = ws.imagekit("build", *args, "--only", "*-clash", "--locked")
    assert locked.returncode == 2 and "--locked refuses to lock on this host" in locked.stderr


@pytest.mark.engines(*ALL)
def test_unchanged_rebuild_is_skipped(built, ws):
    assert built.returncode == 0
    again = ws.imagekit("build", *ws.args())
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout
    cases = {c.get("name"): c for c in ET.parse(ws.reports / "junit" / "build.xml").getroot().iter("testcase")}
    assert sorted(cases) == [IMAGE_ID, EXTENSION_ID]
    for image_id, case in cases.items():
        assert case.find("skipped").get("message").startswith(f"unchanged: {ws.repo}:{image_id}-")


# The same on every engine, and minutes of the primary engine's time (its build, the healthy
# image's whole suite) on the run's longest lane: Engine 20.10's has room (tests/engines.py).
@pytest.mark.engines(DOCKER20, primary=False)
@pytest.mark.tool("xmllint")
def test_a_failing_image_neither_stops_nor_hides_the_others(built, ws, engine, tmp_path):
    assert built.returncode == 0
    # The local base without bash: it locks (apt runs under sh), and every RUN of the template fails.
    broken_base = f"imagekit-e2e/no-shell-{ws.repo.rsplit('-', 1)[1]}:1"
    engine.client.images.build(fileobj=io.BytesIO(f"FROM {LOCAL_BASE}\nRUN rm /usr/bin/bash\n".encode()), tag=broken_base, rm=True)
    overlay = tmp_path / "broken.yaml"
    overlay.write_text(f'variants:\n  broken:\n    cuda: "12.1.1"\n    wheel: cu124\n    base_image: {broken_base}\n')
    # Its own copy of the session's lock, so the broken variant's entries stay out of the session's.
    lock_copy = tmp_path / "broken.lock"
    lock_copy.write_text(Path(ws.matrices[ws.matrices.index("--lock") + 1]).read_text())
    # Its own reports too: pytest may order this test before those that read the session's reports.
    reports = tmp_path / "reports"
    args = [*ws.matrices, "--reports", str(reports), "--matrix", str(overlay), "--lock", str(lock_copy)]
    lock = ws.imagekit("lock", *ws.matrices, "--matrix", str(overlay), "--only", "*broken*", "--lock", str(lock_copy))
    assert lock.returncode == 0, lock.stdout + lock.stderr
    build = ws.imagekit("build", *args)
    assert build.returncode == 1, build.stdout + build.stderr
    states = {c.get("name"): c for c in ET.parse(reports / "junit" / "build.xml").getroot().iter("testcase")}
    assert states[IMAGE_ID].find("skipped") is not None
    failure = states["2.6.0-broken-py3.11-runtime"].find("failure")
    assert failure is not None and "docker build exited" in failure.get("message")
    assert "bash" in (failure.text or ""), "the failure carries the tail of the build log"
    # Its extension cannot be built, and says why; the healthy extension is unaffected.
    blocked = states["2.6.0-broken-py3.11-runtime-tracking"].find("failure")
    assert blocked is not None and blocked.get("message") == "not built: its parent 2.6.0-broken-py3.11-runtime failed"
    assert states[EXTENSION_ID].find("skipped") is not None

    # The healthy base beside the broken one (its extension's suite adds minutes and nothing here).
    test = ws.imagekit("test", *args, "--gpus", "none", "--only", "*broken*", "--only", IMAGE_ID)
    assert test.returncode == 1
    xmllint_schema(reports / "junit.xml")
    assert "2.6.0-broken-py3.11-runtime" in test.stdout and "not built" in test.stdout
    assert summary_row(reports, IMAGE_ID).startswith(f"| `{IMAGE_ID}` | unchanged | passed |")


def summary_row(reports: Path, image_id: str) -> str:
    return next(line for line in (reports / "summary.md").read_text().splitlines() if f"`{image_id}`" in line)


@pytest.fixture
def slow_smoke(project_dir: Path) -> Path:
    """A smoke suite that hangs, to exercise the timeout and Ctrl-C paths."""
    suite = project_dir / "slow-smoke"
    suite.mkdir()
    (suite / "conftest.py").write_text((ROOT / "smoke" / "conftest.py").read_text())
    (suite / "test_hang.py").write_text("import time\n\ndef test_hang():\n    time.sleep(600)\n")
    overlay = project_dir / "slow.yaml"
    overlay.write_text(f"smoke: {suite}\n")
    return overlay


def test_timeout_stops_the_run_and_removes_the_container(built, ws, engine, slow_smoke):
    assert built.returncode == 0
    out = ws.imagekit("test", *ws.args("--matrix", str(slow_smoke), "--timeout", "5", "--gpus", "none"), timeout=300)
    assert out.returncode == 1
    failure = ET.parse(ws.reports / "junit" / f"{IMAGE_ID}.xml").getroot().find(".//failure")
    assert failure is not None and "timed out after 5s" in failure.get("message")
    assert smoke_containers(engine, ws) == []


@pytest.mark.engines(*ALL)
def test_ctrl_c_removes_the_container(built, ws, engine, slow_smoke):
    assert built.returncode == 0
    args = ["test", *ws.args("--matrix", str(slow_smoke), "--gpus", "none")]
    code, stderr = ws.interrupt(args, lambda: bool(smoke_containers(engine, ws)), signal.SIGINT, "the smoke container")
    assert code == 130, stderr
    assert "interrupted" in stderr
    assert smoke_containers(engine, ws) == []


@pytest.mark.engines(*ALL)
def test_doctor_reports_this_engine_and_builder(ws):
    out = ws.imagekit("doctor", *ws.matrix_files)
    store = (
        "containerd image store (overlayfs snapshotter)" if ws.engine_name == CONTAINERD else "classic image store (overlay2 graph driver)"
    )
    engine = "Engine 20.10" if ws.engine_name == "docker20" else "Engine 28.5"
    assert f"  ok  docker engine: {engine}" in out.stderr and store in out.stderr, out.stderr
    builder = "DOCKER_BUILDKIT=1 docker build" if ws.engine_name == "docker20" else "docker buildx build"
    assert f"  ok  buildkit: {builder}" in out.stderr
    if ws.engine_name == CONTAINERD:
        assert "buildx build --output type=oci,rewrite-timestamp=true, then docker load" in out.stderr
    # The level is what a probe build found on this very builder, not a version string.
    level = LEVEL[ws.engine_name]
    assert f"{'ok' if level == 'bit-for-bit' else '--'}  reproducibility: {level}: " in out.stderr, out.stderr
    assert "probe: " in out.stderr
    assert " disk: " in out.stderr and "GiB free under " in out.stderr
    assert "Traceback" not in out.stderr


LIMITS_TEST = """
import json
from pathlib import Path


def read(*paths):
    for path in paths:
        try:
            return Path(path).read_text().split()
        except OSError:
            pass
    return []


def test_record_limits(output_dir):
    memory = read("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    cpu = read("/sys/fs/cgroup/cpu.max") or read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") + read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    (output_dir / "limits.json").write_text(json.dumps({"memory": memory, "cpu": cpu}))
"""


def test_memory_and_cpu_limits_reach_the_container(built, ws, project_dir):
    assert built.returncode == 0
    suite = project_dir / "limits-smoke"
    suite.mkdir()
    (suite / "conftest.py").write_text((ROOT / "smoke" / "conftest.py").read_text())
    (suite / "test_limits.py").write_text(LIMITS_TEST)
    overlay = project_dir / "limits.yaml"
    overlay.write_text(f"smoke: {suite}\n")
    out = ws.imagekit("test", *ws.args("--matrix", str(overlay), "--memory", "3g", "--cpus", "1.5", "--gpus", "none"), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    limits = json.loads((ws.reports / "artifacts" / IMAGE_ID / "limits.json").read_text())
    assert limits["memory"] == [str(3 * 2**30)]
    quota, period = (int(x) for x in limits["cpu"])
    assert quota / period == 1.5


def test_sigterm_stops_running_builds_instead_of_waiting(ws, project_dir):
    templates = project_dir / "hang-templates"
    templates.mkdir()
    (templates / "Dockerfile.j2").write_text("FROM {{ image.base_image }}\nRUN sleep 600\n")
    overlay = project_dir / "hang.yaml"
    overlay.write_text(f"templates: {templates}\nextensions: null\n")
    # The lock records the template that renders each image: other templates, a lock of their own,
    # which keeps the session's pins (nothing to resolve) and records the new inputs.
    lock = project_dir / "hang.lock"
    lock.write_text(Path(ws.matrices[ws.matrices.index("--lock") + 1]).read_text())
    matrices = [*ws.matrices, "--matrix", str(overlay), "--lock", str(lock)]
    relocked = ws.imagekit("lock", *matrices)
    assert relocked.returncode == 0 and "kept, inputs recorded" in relocked.stdout, relocked.stdout + relocked.stderr
    log = ws.reports / "logs" / f"build-{IMAGE_ID}.log"
    log.unlink(missing_ok=True)
    args = ["build", *matrices, "--reports", str(ws.reports), "--out", str(ws.out)]
    code, stderr = ws.interrupt(args, lambda: log.is_file() and "RUN sleep 600" in log.read_text(), signal.SIGTERM, "the hanging build")
    assert code == 130, stderr
    left = subprocess.run(["pgrep", "-f", f"build.*{ws.out / IMAGE_ID}"], capture_output=True, text=True)
    assert left.stdout == "", "a docker build process outlived imagekit"


def test_an_image_that_breaks_its_promises_fails_loudly(built, ws, engine, tmp_path):
    assert built.returncode == 0
    code, root = run_suite(
        engine,
        ws,
        tmp_path,
        "/imagekit/smoke/test_environment.py",
        env={"IMAGEKIT_EXPECT_TORCH": "2.5.1", "IMAGEKIT_EXPECT_CUDA": "11.8", "IMAGEKIT_EXPECT_PYTHON": "3.12"},
    )
    assert code == 1
    found = failures(root)
    assert "the image promises 2.5.1" in found["test_torch_version"]
    assert "torch was built for CUDA 12.4, the image promises CUDA 11.8 (wrong wheel channel?)" in found["test_torch_cuda_build"]
    assert "Python 3.11 runs, the image promises 3.12" in found["test_python_version"]


def test_an_image_without_its_cuda_libraries_fails_loudly(built, ws, engine, tmp_path):
    assert built.returncode == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    hidden = "/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib"
    code, root = run_suite(
        engine, ws, tmp_path, "/imagekit/smoke/test_environment.py", volumes={str(empty): {"bind": hidden, "mode": "ro"}}
    )
    assert code == 1
    message = " ".join(failures(root).values())
    assert "does not import" in message and "libcudnn" in message and "rebuild it with `imagekit build`" in message


def test_require_gpu_turns_the_skip_into_a_failure(built, ws, engine, tmp_path):
    assert built.returncode == 0
    code, root = run_suite(engine, ws, tmp_path, "/imagekit/smoke/test_gpu.py", "--require-gpu")
    assert code == 1
    found = failures(root)
    assert set(found) == {"test_gpu_detected", "test_gpu_matches_cpu", "test_gpu_arch_supported", "test_driver_new_enough"}
    assert all("no GPU visible: run with --gpus all; --require-gpu was given" in m for m in found.values())


# CI time: the classic store and Engine 20.10 compare file trees alike (one of them is enough), and
# on the containerd store a cold rebuild rewrites every layer it makes: the base image, whose torch
# layers are where a rebuild could drift, is checked there, its extension on the classic store.
@pytest.mark.engines(CLASSIC)
def test_verify_rebuilds_the_images_to_the_same_content(built, ws, engine):
    """Cold rebuilds of the locked base image (and, on the classic store, of its extension). On the
    containerd store: the same image digest (bit-for-bit). On the classic store, whose builder
    cannot make file times equal: the same files, byte for byte."""
    assert built.returncode == 0
    images = (IMAGE_ID,) if ws.engine_name == CONTAINERD else (IMAGE_ID, EXTENSION_ID)
    ids = {image_id: engine.inspect_image(f"{ws.repo}:{image_id}")["Id"] for image_id in images}
    cache_before = engine.build_cache_ids()
    out = ws.imagekit("verify", *ws.args(), *images, timeout=3000)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for image_id in images:
        record = json.loads((ws.reports / f"verify-{image_id}.json").read_text())
        assert record["state"] == "same" and record["differences"] == [], record["message"]
        assert f"{image_id}: dropped the rebuild's build cache" in out.stderr
        assert "same inputs" in record["message"] and all(stamped(p) for p in record["allowed"])
        if ws.engine_name == CONTAINERD:
            assert record["compared"] == "image digests" and record["digests"] == [ids[image_id], ids[image_id]], record
            assert f"image digests compared: both {ids[image_id][:19]}" in record["message"]
        else:
            assert record["compared"] == "file trees" and record["digests"][0] == ids[image_id] != record["digests"][1], record
        # The rebuild's temporary tag is gone; the built image keeps its tags.
        assert engine.inspect_image(f"{ws.repo}:{image_id}")["Id"] == ids[image_id]
        log = (ws.reports / "logs" / f"verify-{image_id}.log").read_text()
        # BuildKit's plain progress: "#8 [torch 1/2] RUN …" and, for a step taken from the cache, "#8 CACHED".
        runs = set(re.findall(r"^(#\d+) \[[^\]]+\] RUN ", log, re.MULTILINE))
        cached = set(re.findall(r"^(#\d+) CACHED$", log, re.MULTILINE))
        assert "--no-cache" in log.splitlines()[0] and runs and not runs & cached, "the rebuild must not come from the build cache"
    assert not [t for i in engine.client.images.list(name=ws.repo) for t in i.tags if t.endswith("-verify")]
    # The rebuild's second copy of torch does not stay behind as build cache.
    base = json.loads((ws.reports / f"verify-{IMAGE_ID}.json").read_text())
    assert base["cache_reclaimed"] > 10**9, base["cache_reclaimed"]
    torch_layers = [r for r in engine.client.df()["BuildCache"] if r["ID"] not in cache_before and r["Size"] > 10**9]
    assert not [r for r in torch_layers if not r["Shared"] and not r["InUse"]], torch_layers


@pytest.mark.engines(CLASSIC, primary=False)  # file trees on every store; a rewritten rebuild costs minutes on the primary one
def test_verify_shows_what_a_changed_pin_changed(built, ws, tmp_path):
    assert built.returncode == 0
    overlay = tmp_path / "bump.yaml"
    overlay.write_text('extensions:\n  tracking:\n    packages: ["tensorboardX==2.6.2.2", "protobuf==5.29.2"]\n')
    lock = tmp_path / "bump.lock"
    lock.write_text(Path(ws.matrices[ws.matrices.index("--lock") + 1]).read_text())
    changed = ["--matrix", str(overlay), "--lock", str(lock)]
    check = ws.imagekit("lock", "--check", *ws.matrices, *changed)
    assert check.returncode == 1 and f"{EXTENSION_ID} is stale" in check.stderr
    relock = ws.imagekit("lock", *ws.matrices, *changed)
    assert relock.returncode == 0, relock.stderr
    assert "protobuf==5.29.2" in yaml.safe_load(lock.read_text())["images"][EXTENSION_ID]["requirements"]

    reports = tmp_path / "reports"  # its own: the session's verify records belong to the test above
    out = ws.imagekit("verify", *ws.matrices, *changed, "--reports", str(reports), EXTENSION_ID, timeout=1200)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    record = json.loads((reports / f"verify-{EXTENSION_ID}.json").read_text())
    assert record["state"] == "different" and "inputs changed since it was built" in record["message"]
    whats = {d["path"]: d["what"] for d in record["differences"]}
    site = "opt/venv/lib/python3.11/site-packages"
    assert whats[f"{site}/protobuf-5.29.2.dist-info/METADATA"] == "only in the rebuild"
    assert whats[f"{site}/protobuf-5.29.3.dist-info/METADATA"] == "only in the original"
    assert f"{site}/protobuf-5.29.2.dist-info" in out.stderr, "the differing paths are printed"


@pytest.mark.engines(*ALL)
def test_manifest_lists_what_is_inside_and_diff_shows_what_an_extension_adds(built, ws, engine):
    assert built.returncode == 0
    out = ws.imagekit("manifest", *ws.matrix_files, IMAGE_ID, "--format", "json")
    assert out.returncode == 0, out.stderr
    inside = json.loads(out.stdout)
    assert inside["pip"]["torch"]["version"] == "2.6.0" and inside["pip"]["torch"]["size"] > 500_000_000
    assert inside["cuda"]["torch"] == "12.4" and inside["cuda"]["libraries"]["nvidia-cudnn-cu12"] == "9.1.0.70"
    assert inside["cuda"]["toolkit"] is None, "the local Debian base is not a CUDA base"
    assert inside["apt"]["libc6"]["version"] and inside["python"].startswith("3.11.")
    # Unpacked bytes on either store (the containerd store's inspected Size counts compressed content).
    assert inside["size"] == engine.size(f"{ws.repo}:{IMAGE_ID}") > 5 * 10**9
    recorded = json.loads((ws.reports / "manifests" / f"{IMAGE_ID}.json").read_text())  # written by the build
    assert recorded["size"] == inside["size"] and recorded["manifest"]["pip"] == inside["pip"] and recorded["layers"]

    diff = ws.imagekit("diff", *ws.matrix_files, IMAGE_ID, EXTENSION_ID)
    assert diff.returncode == 1, diff.stderr
    lines = diff.stdout.splitlines()
    for added in ("+ pip          tensorboardx 2.6.2.2 ", "+ pip          protobuf 5.29.3 ", "+ apt          git 1:"):
        assert any(line.startswith(added) for line in lines), (added, diff.stdout)
    assert not [line for line in lines if line.startswith(("- ", "~ pip", "~ apt"))], "an extension adds; it never swaps or removes"
    same = ws.imagekit("diff", *ws.matrix_files, IMAGE_ID, f"{ws.repo}:{IMAGE_ID}")
    assert same.returncode == 0 and "hold the same packages" in same.stderr
    missing = ws.imagekit("manifest", *ws.matrix_files, f"{ws.repo}:no-such-tag")
    assert missing.returncode == 2 and "cannot be pulled" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.engines(CLASSIC, primary=False)  # the budget check is the same on every store; a rebuild is seconds here
def test_an_image_over_its_size_budget_fails_its_build_naming_its_largest_layers_and_packages(built, ws, engine, tmp_path):
    assert built.returncode == 0
    bump_repo = f"{ws.repo}-bump"  # the changed extension goes to its own repository: the session's tags stay as they are
    overlay = tmp_path / "bump.yaml"
    bump = f'extensions:\n  tracking:\n    repository: {bump_repo}\n    packages: ["tensorboardX==2.6.2.2", "protobuf==5.29.2"]\n'
    overlay.write_text(bump + 'size_budgets:\n  "*-tracking": 1GB\n')
    lock = tmp_path / "bump.lock"
    lock.write_text(Path(ws.matrices[ws.matrices.index("--lock") + 1]).read_text())
    changed = ["--matrix", str(overlay), "--lock", str(lock)]
    relock = ws.imagekit("lock", *ws.matrices, *changed, "--only", EXTENSION_ID)
    assert relock.returncode == 0, relock.stderr
    args = ws.args(*changed, "--only", EXTENSION_ID, "--reports", str(tmp_path / "reports"))
    try:
        over = ws.imagekit("build", *args)
        assert over.returncode == 1, over.stdout + over.stderr
        assert "is over its size budget of 1.00 GB" in over.stderr and f"{overlay}:6: size_budgets.*-tracking" in over.stderr
        layers = over.stderr[over.stderr.index("largest layers:") : over.stderr.index("largest packages:")]
        assert "-r /run/imagekit/requirements-cuda.txt" in layers, "layers are named by the instruction that made them"
        assert "pip torch 2.6.0" in over.stderr[over.stderr.index("largest packages:") :]
        assert engine.inspect_image(f"{bump_repo}:{EXTENSION_ID}") is None, "nothing over budget is left to test or publish"
        cases = {c.get("name"): c for c in ET.parse(tmp_path / "reports" / "junit" / "build.xml").getroot().iter("testcase")}
        assert "size budget" in cases[EXTENSION_ID].find("failure").get("message")
        assert cases[IMAGE_ID].find("skipped") is not None, "the parent, within its budget, is unaffected"

        overlay.write_text(bump)  # the budget lifted: it builds, and `diff` names the changed pin
        within = ws.imagekit("build", *args)
        assert within.returncode == 0, within.stdout + within.stderr
        diff = ws.imagekit("diff", *ws.matrix_files, f"{ws.repo}:{EXTENSION_ID}", f"{bump_repo}:{EXTENSION_ID}")
        assert diff.returncode == 1 and "~ pip          protobuf 5.29.3 → 5.29.2" in diff.stdout, diff.stdout + diff.stderr
    finally:
        for image in engine.client.images.list(name=bump_repo):
            engine.remove_image(image.id)
