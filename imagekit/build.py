"""Rendered images → BuildKit builds, in bounded parallel, one log per image, skipped when the
content tag already exists. One image failing never stops or hides the others."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import console
from .engine import Builder, BuildProcesses, Engine, run_build
from .errors import ImagekitError
from .identity import Identity, identify
from .matrix import ImageSpec
from .pip_secrets import pip_secrets
from .provenance import Provenance
from .render import Rendered
from .reports import BUILD_SUITE, Case, Suite, log_tail, write_suites


@dataclass(frozen=True)
class BuildOutcome:
    image: ImageSpec
    state: str  # built | unchanged | failed
    seconds: float
    content_tag: str | None = None
    log: Path | None = None
    message: str = ""

    def case(self) -> Case:
        case = Case(name=self.image.id, classname=BUILD_SUITE, time=self.seconds)
        if self.state == "unchanged":
            case.outcome, case.message = "skipped", f"unchanged: {self.content_tag} already exists"
        elif self.state == "failed":
            case.outcome, case.message = "failed", self.message
            case.text = log_tail(self.log) if self.log else self.message
        return case


def resolve_identity(engine: Engine, rendered: Rendered, *, pull: bool) -> Identity | None:
    """Bind a rendered image to its content id on this engine; None when its base is absent."""
    base_ref = engine.resolve(rendered.image.base_image, pull=pull)
    return identify(rendered, base_ref) if base_ref else None


@dataclass
class BuildRun:
    engine: Engine
    builder: Builder
    provenance: Provenance
    render_dir: Path
    logs_dir: Path
    procs: BuildProcesses = field(default_factory=BuildProcesses)

    def one(self, rendered: Rendered, secrets: dict[str, Path], board: console.StatusBoard) -> BuildOutcome:
        image = rendered.image
        start = time.monotonic()

        def outcome(state: str, **kw: object) -> BuildOutcome:
            board.set(image.id, state, str(kw.get("message", "")), final=True)
            return BuildOutcome(image=image, state=state, seconds=time.monotonic() - start, **kw)  # type: ignore[arg-type]

        try:
            board.set(image.id, "resolving base", image.base_image)
            ident = resolve_identity(self.engine, rendered, pull=True)
            assert ident is not None  # pull=True raises instead of returning None
            if self.engine.inspect_image(ident.content_tag) is not None:
                # The moving tag follows the content tag, even if something else was tagged meanwhile.
                self.engine.tag(ident.content_tag, image.tag)
                return outcome("unchanged", content_tag=ident.content_tag, message=ident.content_tag)
            context = rendered.write(self.render_dir)
            log_path = self.logs_dir / f"build-{image.id}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            argv, env = self.builder.command(context, ident.tags, ident.labels(self.provenance), secrets)
            board.set(image.id, "building")
            # Line-buffered, so `tail -f` on the log follows the build as it happens.
            with log_path.open("w", encoding="utf-8", buffering=1) as log:
                log.write("$ " + " ".join(argv) + "\n")
                rc = run_build(argv, env, log, self.procs, lambda line: board.set(image.id, "building", line))
            if rc != 0:
                return outcome("failed", content_tag=ident.content_tag, log=log_path, message=f"docker build exited {rc}; log: {log_path}")
            if self.engine.inspect_image(ident.content_tag) is None:
                return outcome("failed", log=log_path, message=f"build succeeded but {ident.content_tag} is not on the engine")
            return outcome("built", content_tag=ident.content_tag, log=log_path, message=ident.content_tag)
        except ImagekitError as exc:
            return outcome("failed", message=exc.message)
        except Exception as exc:  # noqa: BLE001 - one image's surprise must not stop the others
            return outcome("failed", message=f"{type(exc).__name__}: {exc}")


def build_images(
    rendered: list[Rendered],
    *,
    engine: Engine,
    builder: Builder,
    provenance: Provenance,
    jobs: int,
    render_dir: Path,
    reports_dir: Path,
) -> list[BuildOutcome]:
    run = BuildRun(engine, builder, provenance, render_dir, reports_dir / "logs")
    board = console.StatusBoard([r.image.id for r in rendered])
    with pip_secrets({r.image.index_url for r in rendered}) as secrets, board.shown():
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(run.one, r, secrets[r.image.index_url], board) for r in rendered]
            try:
                outcomes = [f.result() for f in futures]
            except KeyboardInterrupt:
                # Leaving the pool waits for running builds: stop them first, and queued ones.
                for f in futures:
                    f.cancel()
                run.procs.stop_all()
                raise
    write_suites(reports_dir / "junit" / "build.xml", [Suite(BUILD_SUITE, [o.case() for o in outcomes])])
    return outcomes
