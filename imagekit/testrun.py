"""Built images → the smoke suite run inside each, unchanged, through the Docker SDK → JUnit.

Each image is tested as it would be published: its own user, its own Python and pytest; only
`smoke/` (read-only) and an output folder are mounted. Images run one at a time so GPU timings
never share a device.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import console, host
from .build import resolve_identity
from .engine import Engine, gpu_request, nvidia_runtime_present
from .errors import EngineError
from .render import Rendered
from .reports import Case, Suite, log_tail, write_suites

SMOKE_MOUNT = "/imagekit/smoke"
OUT_MOUNT = "/imagekit/out"


@dataclass(frozen=True)
class SmokeOptions:
    gpus: str  # all | none | device=0,1 (auto already resolved)
    require_gpu: bool
    timeout: float
    memory: str | None
    cpus: float | None


@dataclass(frozen=True)
class SmokeOutcome:
    image_id: str
    state: str  # passed | failed | error | not built
    seconds: float
    report: Path
    message: str = ""


def resolve_gpus(spec: str, engine: Engine) -> str:
    """`auto` → `all` when this host has an NVIDIA GPU and Docker can hand it to containers."""
    if spec != "auto":
        if spec != "none" and not nvidia_runtime_present(engine.info()):
            raise EngineError(
                f"--gpus {spec}: Docker on this host has no NVIDIA runtime",
                tip="install nvidia-container-toolkit and run `nvidia-ctk runtime configure --runtime=docker`, or use --gpus none",
            )
        return spec
    gpus = host.nvidia_gpus()
    return "all" if gpus and nvidia_runtime_present(engine.info()) else "none"


def smoke_command(image_id: str, require_gpu: bool) -> list[str]:
    # umask 0: files the image's (non-root) user writes stay removable by the host user.
    args = [
        "-p",
        "no:cacheprovider",
        "-rs",
        f"--junitxml={OUT_MOUNT}/junit.xml",
        "-o",
        "junit_family=xunit2",
        "-o",
        f"junit_suite_name={image_id}",
        f"--output-dir={OUT_MOUNT}",
    ]
    if require_gpu:
        args.append("--require-gpu")
    return ["sh", "-c", 'umask 0000 && exec python -m pytest "$@"', "smoke", SMOKE_MOUNT, *args]


def _failed_report(path: Path, image_id: str, outcome: str, message: str, text: str) -> None:
    write_suites(path, [Suite(image_id, [Case(name="smoke suite", classname=image_id, outcome=outcome, message=message, text=text)])])


def smoke_one(rendered: Rendered, engine: Engine, options: SmokeOptions, smoke_dir: Path, reports_dir: Path) -> SmokeOutcome:
    image_id = rendered.image.id
    report = reports_dir / "junit" / f"{image_id}.xml"
    start = time.monotonic()
    ident = resolve_identity(engine, rendered, pull=False)
    if ident is None or engine.inspect_image(ident.content_tag) is None:
        wanted = ident.content_tag if ident else f"{rendered.image.tag} (its base {rendered.image.base_image} is absent)"
        message = f"{wanted} is not built from the current matrix and templates: run `imagekit build` first"
        _failed_report(report, image_id, "error", message, message)
        return SmokeOutcome(image_id, "not built", 0.0, report, message)

    out_dir = reports_dir / "artifacts" / image_id
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    os.chmod(out_dir, 0o777)  # noqa: S103 - the image writes here as its own non-root user
    log_path = reports_dir / "logs" / f"test-{image_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        result = engine.run_container(
            ident.content_tag,
            smoke_command(image_id, options.require_gpu),
            volumes={
                str(smoke_dir.resolve()): {"bind": SMOKE_MOUNT, "mode": "ro"},
                str(out_dir.resolve()): {"bind": OUT_MOUNT, "mode": "rw"},
            },
            environment={"PYTHONDONTWRITEBYTECODE": "1"},
            gpus=gpu_request(options.gpus),
            timeout=options.timeout,
            mem_limit=options.memory,
            cpus=options.cpus,
            log=log,
        )
    seconds = time.monotonic() - start
    produced = out_dir / "junit.xml"
    if result.timed_out:
        message = f"smoke suite timed out after {options.timeout:.0f}s and was stopped"
        _failed_report(report, image_id, "failed", message, log_tail(log_path))
        return SmokeOutcome(image_id, "failed", seconds, report, message)
    if not produced.is_file():
        message = f"the smoke suite wrote no report (exit {result.exit_code}); see {log_path}"
        _failed_report(report, image_id, "error", message, log_tail(log_path))
        return SmokeOutcome(image_id, "error", seconds, report, message)
    report.parent.mkdir(parents=True, exist_ok=True)
    os.replace(produced, report)
    if result.exit_code == 0:
        return SmokeOutcome(image_id, "passed", seconds, report)
    if result.exit_code == 5:
        message = "the smoke suite collected no tests"
        _failed_report(report, image_id, "error", message, log_tail(log_path))
        return SmokeOutcome(image_id, "error", seconds, report, message)
    state = "failed" if result.exit_code == 1 else "error"
    return SmokeOutcome(image_id, state, seconds, report, f"pytest exited {result.exit_code}; see {log_path}")


def smoke_images(
    rendered: list[Rendered], *, engine: Engine, options: SmokeOptions, smoke_dir: Path, reports_dir: Path
) -> list[SmokeOutcome]:
    board = console.StatusBoard([r.image.id for r in rendered])
    outcomes = []
    with board.shown():
        for r in rendered:
            board.set(r.image.id, "testing", f"gpus={options.gpus}")
            try:
                outcome = smoke_one(r, engine, options, smoke_dir, reports_dir)
            except EngineError as exc:
                report = reports_dir / "junit" / f"{r.image.id}.xml"
                _failed_report(report, r.image.id, "error", exc.message, exc.message)
                outcome = SmokeOutcome(r.image.id, "error", 0.0, report, exc.message)
            board.set(r.image.id, outcome.state, outcome.message, final=True)
            outcomes.append(outcome)
    return outcomes
