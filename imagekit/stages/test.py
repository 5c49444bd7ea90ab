"""Built images → the smoke suite run inside each, unchanged, through the Docker SDK → JUnit.

Each image is tested as it would be published: its own user, its own Python and pytest; only
`smoke/` (read-only) and an output folder are mounted. Images run one at a time so GPU timings
never share a device.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from imagekit import console
from imagekit.adapters import host
from imagekit.adapters.docker_engine import gpu_request, nvidia_runtime_present
from imagekit.core.render import Rendered
from imagekit.errors import EngineError
from imagekit.outcomes import Tested
from imagekit.reports import CONTENT_ID_PROPERTY, HOST, SUITE_REPORT, Case, ReportsDir, Suite, log_tail, stamp_suites, write_suites
from imagekit.stages.identity import resolve_identity
from imagekit.stages.ports import ContainerEngine, HostRunner

SMOKE_MOUNT = "/imagekit/smoke"
EXTENSION_MOUNT = "/imagekit/extension"
OUT_MOUNT = "/imagekit/out"


@dataclass(frozen=True)
class SmokeOptions:
    gpus: str  # all | none | device=0,1 (auto already resolved)
    require_gpu: bool
    timeout: float
    memory: str | None
    cpus: float | None
    environment: dict[str, str] = field(default_factory=dict)  # extra variables for the suite


@dataclass(frozen=True)
class SmokeOutcome:
    image_id: str
    state: Tested
    seconds: float
    report: Path
    message: str = ""


def resolve_gpus(spec: str, engine: ContainerEngine, probe: host.Probe) -> str:
    """`auto` → `all` when this host has an NVIDIA GPU (``probe`` runs nvidia-smi) and Docker can
    hand it to containers."""
    if spec != "auto":
        if spec != "none" and not nvidia_runtime_present(engine.info()):
            raise EngineError(
                f"--gpus {spec}: Docker on this host has no NVIDIA runtime",
                tip="install nvidia-container-toolkit and run `nvidia-ctk runtime configure --runtime=docker`, or use --gpus none",
            )
        return spec
    gpus = host.nvidia_gpus(probe)
    return "all" if gpus and nvidia_runtime_present(engine.info()) else "none"


def pytest_args(junit: str, out_dir: str, suite_name: str, require_gpu: bool) -> list[str]:
    """The smoke suite's pytest arguments, the same in an image and on a bare host: its JUnit
    report and output folder as the suite sees them (paths in the container, or on the host)."""
    args = [
        "-p", "no:cacheprovider", "-rs",
        f"--junitxml={junit}", "-o", "junit_family=xunit2", "-o", f"junit_suite_name={suite_name}",
        f"--output-dir={out_dir}",
    ]  # fmt: skip
    return [*args, "--require-gpu"] if require_gpu else args


def smoke_command(image_id: str, require_gpu: bool, extension_tests: bool = False, ini: bool = True) -> list[str]:
    # An extension runs its parent's suite and its own tests in one session, so one report says
    # whether it passed. Two folders make pytest look for its ini file above both: name the suite's.
    paths = [SMOKE_MOUNT]
    if extension_tests:
        paths += [EXTENSION_MOUNT, "--rootdir=/imagekit", *(["-c", f"{SMOKE_MOUNT}/pytest.ini"] if ini else [])]
    # umask 0: files the image's (non-root) user writes stay removable by the host user.
    # The suite's report lands in the mounted artifacts folder, where ReportsDir.suite_report finds it.
    junit = f"{OUT_MOUNT}/{SUITE_REPORT}"
    return ["sh", "-c", 'umask 0000 && exec python -m pytest "$@"', "smoke", *paths, *pytest_args(junit, OUT_MOUNT, image_id, require_gpu)]


def _failed_report(path: Path, image_id: str, outcome: str, message: str, text: str) -> None:
    write_suites(path, [Suite(image_id, [Case(name="smoke suite", classname=image_id, outcome=outcome, message=message, text=text)])])


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _outcome(
    image_id: str,
    exit_code: int | None,
    produced: Path,
    report: Path,
    log_path: Path,
    seconds: float,
    timeout: float,
    stamp: dict[str, str] | None = None,
) -> SmokeOutcome:
    """Turn one smoke run (its exit code and the report it left) into an outcome and a report that
    always exists, so a crash or a hang shows in the JUnit beside real failures."""
    if exit_code is None:
        message = f"smoke suite timed out after {timeout:.0f}s and was stopped"
        _failed_report(report, image_id, "failed", message, log_tail(log_path))
        return SmokeOutcome(image_id, Tested.FAILED, seconds, report, message)
    if not produced.is_file():
        message = f"the smoke suite wrote no report (exit {exit_code}); see {log_path}"
        _failed_report(report, image_id, "error", message, log_tail(log_path))
        return SmokeOutcome(image_id, Tested.ERROR, seconds, report, message)
    report.parent.mkdir(parents=True, exist_ok=True)
    stamp_suites(produced, stamp)
    os.replace(produced, report)
    if exit_code == 0:
        return SmokeOutcome(image_id, Tested.PASSED, seconds, report)
    if exit_code == 5:
        message = "the smoke suite collected no tests"
        _failed_report(report, image_id, "error", message, log_tail(log_path))
        return SmokeOutcome(image_id, Tested.ERROR, seconds, report, message)
    state = Tested.FAILED if exit_code == 1 else Tested.ERROR
    return SmokeOutcome(image_id, state, seconds, report, f"pytest exited {exit_code}; see {log_path}")


def smoke_one(
    rendered: Rendered,
    engine: ContainerEngine,
    options: SmokeOptions,
    smoke_dir: Path,
    reports: ReportsDir,
    extension_tests: Path | None = None,
) -> SmokeOutcome:
    image_id = rendered.image.id
    report = reports.test_junit(image_id)
    ident = resolve_identity(engine, rendered, pull=False)
    if ident is None or engine.inspect_image(ident.content_tag) is None:
        wanted = ident.content_tag if ident else f"{rendered.image.tag} (its base {rendered.image.base_image} is absent)"
        message = f"{wanted} is not built from the current matrix and templates: run `imagekit build` first"
        _failed_report(report, image_id, "error", message, message)
        return SmokeOutcome(image_id, Tested.NOT_BUILT, 0.0, report, message)
    stamp = {"imagekit.content-tag": ident.content_tag}
    return run_suite(image_id, ident.content_tag, ident.content_id, engine, options, smoke_dir, reports, extension_tests, stamp)


def run_suite(
    image_id: str,
    image_ref: str,
    content_id: str,
    engine: ContainerEngine,
    options: SmokeOptions,
    smoke_dir: Path,
    reports: ReportsDir,
    extension_tests: Path | None,
    stamp: dict[str, str],
) -> SmokeOutcome:
    """The suite inside ``image_ref`` (a content tag, or a staged digest), its report stamped with
    the content id it tested."""
    start = time.monotonic()
    report = reports.test_junit(image_id)
    out_dir = _fresh_dir(reports.artifacts(image_id))
    os.chmod(out_dir, 0o777)  # noqa: S103 - the image writes here as its own non-root user
    log_path = reports.log("test", image_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    volumes = {
        str(smoke_dir.resolve()): {"bind": SMOKE_MOUNT, "mode": "ro"},
        str(out_dir.resolve()): {"bind": OUT_MOUNT, "mode": "rw"},
    }
    if extension_tests is not None:
        volumes[str(extension_tests.resolve())] = {"bind": EXTENSION_MOUNT, "mode": "ro"}
    with log_path.open("w", encoding="utf-8") as log:
        result = engine.run_container(
            image_ref,
            smoke_command(image_id, options.require_gpu, extension_tests is not None, (smoke_dir / "pytest.ini").is_file()),
            volumes=volumes,
            environment={"PYTHONDONTWRITEBYTECODE": "1", **options.environment},
            gpus=gpu_request(options.gpus),
            timeout=options.timeout,
            mem_limit=options.memory,
            cpus=options.cpus,
            log=log,
        )
    exit_code = None if result.timed_out else result.exit_code
    # The report names the exact content it tested: publishing is gated on that, not on the image id.
    stamp = {CONTENT_ID_PROPERTY: content_id, **stamp}
    return _outcome(image_id, exit_code, reports.suite_report(image_id), report, log_path, time.monotonic() - start, options.timeout, stamp)


def smoke_host(
    smoke_dir: Path, reports: ReportsDir, runner: HostRunner, *, require_gpu: bool, environment: dict[str, str], timeout: float
) -> SmokeOutcome:
    """The same suite on this host, with this Python (through ``runner``): vets a GPU node without an image."""
    name = f"host-{socket.gethostname()}"
    out_dir = _fresh_dir(reports.artifacts(HOST))
    report = reports.test_junit(HOST)
    log_path = reports.log("test", HOST)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        argv = [
            sys.executable,
            "-m",
            "pytest",
            str(smoke_dir),
            *pytest_args(str(reports.suite_report(HOST)), str(out_dir), name, require_gpu),
        ]
        exit_code = runner(argv, environment, log, timeout)
    return _outcome(name, exit_code, reports.suite_report(HOST), report, log_path, time.monotonic() - start, timeout)


def smoke_images(
    rendered: list[Rendered],
    *,
    engine: ContainerEngine,
    options: SmokeOptions,
    smoke_dir: Path,
    reports: ReportsDir,
    extension_tests: dict[str, Path] | None = None,
) -> list[SmokeOutcome]:
    board = console.StatusBoard([r.image.id for r in rendered])
    outcomes = []
    with board.shown():
        for r in rendered:
            board.set(r.image.id, "testing", f"gpus={options.gpus}")
            try:
                outcome = smoke_one(r, engine, options, smoke_dir, reports, (extension_tests or {}).get(r.image.id))
            except EngineError as exc:
                report = reports.test_junit(r.image.id)
                _failed_report(report, r.image.id, "error", exc.message, exc.message)
                outcome = SmokeOutcome(r.image.id, Tested.ERROR, 0.0, report, exc.message)
            board.set(r.image.id, outcome.state, outcome.message, final=True)
            outcomes.append(outcome)
    return outcomes
