"""Rendered images → BuildKit builds, in bounded parallel, one log per image, skipped when the
content tag already exists; an extension starts once its parent is built. One image failing never
stops or hides the others (its extensions are reported as blocked)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from imagekit import console
from imagekit.adapters.buildkit import OCI, Builder, RegistryCache
from imagekit.adapters.secrets import pip_secrets
from imagekit.core.budget import over_budget
from imagekit.core.identity import Identity
from imagekit.core.manifest import PackageManifest, human
from imagekit.core.matrix import ImageSpec, SizeBudget
from imagekit.core.provenance import Provenance
from imagekit.core.render import BASE_ARG, PARENT_ARG, Rendered
from imagekit.errors import ImagekitError
from imagekit.outcomes import Built
from imagekit.reports import BUILD_SUITE, Case, ReportsDir, Suite, log_tail, write_atomic, write_suites
from imagekit.stages.identity import resolve_identity
from imagekit.stages.inspect import read_manifest
from imagekit.stages.ports import BuildRunner, Engine
from imagekit.stages.reproducibility import Reproducibility


@dataclass(frozen=True)
class BuildOutcome:
    image: ImageSpec
    state: Built
    seconds: float
    content_tag: str | None = None
    log: Path | None = None
    message: str = ""
    size: int | None = None  # bytes, once the image exists
    details: tuple[str, ...] = ()  # an over-budget image: by how much, and its largest layers and packages

    def case(self) -> Case:
        case = Case(name=self.image.id, classname=BUILD_SUITE, time=self.seconds)
        if self.state is Built.UNCHANGED:
            case.outcome, case.message = "skipped", f"unchanged: {self.content_tag} already exists"
        elif not self.state.ok:
            case.outcome, case.message = "failed", self.message
            case.text = log_tail(self.log) if self.log else self.message
        return case


@dataclass
class BuildRun:
    engine: Engine
    builder: Builder
    runner: BuildRunner  # runs the builder's commands
    provenance: Provenance
    render_dir: Path
    reports: ReportsDir
    size_budgets: dict[str, SizeBudget] = field(default_factory=dict)
    reproducibility: Reproducibility | None = None  # None: pass the builder nothing for it
    # Where BuildKit's cache lives in a registry (host[:port]/path), and whether this builder writes it.
    cache_registry: str | None = None
    cache_export: bool = False

    def one(self, rendered: Rendered, secrets: dict[str, Path], board: console.StatusBoard) -> BuildOutcome:
        image = rendered.image
        start = time.monotonic()

        def outcome(state: Built, **kw: object) -> BuildOutcome:
            board.set(image.id, state, str(kw.get("message", "")), final=True)
            return BuildOutcome(image=image, state=state, seconds=time.monotonic() - start, **kw)  # type: ignore[arg-type]

        try:
            board.set(image.id, "resolving base", image.base_image)
            ident = resolve_identity(self.engine, rendered, pull=True)
            if ident is None:  # pull=True raises for a base image: this is an extension's parent
                return outcome(Built.BLOCKED, message=f"its parent {image.parent} is not built")
            if self.engine.inspect_image(ident.content_tag) is not None:
                # The moving tag follows the content tag, even if something else was tagged meanwhile.
                self.engine.tag(ident.content_tag, image.tag)
                return self._measured(ident, Built.UNCHANGED, None, outcome)
            log_path = self.reports.log("build", image.id)
            board.set(image.id, "building")
            rc = self.docker_build(ident, secrets, ident.tags, log_path, lambda line: board.set(image.id, "building", line))
            if rc != 0:
                return outcome(
                    Built.FAILED, content_tag=ident.content_tag, log=log_path, message=f"docker build exited {rc}; log: {log_path}"
                )
            if self.engine.inspect_image(ident.content_tag) is None:
                return outcome(Built.FAILED, log=log_path, message=f"build succeeded but {ident.content_tag} is not on the engine")
            if ident.parent and not _built_on(self.engine.layers(ident.content_tag), self.engine.layers(ident.parent.content_tag)):
                # The parent's tag moved during the build, or the snippet changed FROM: not the tested parent.
                return outcome(Built.FAILED, log=log_path, message=f"{ident.content_tag} does not start with its parent's layers")
            return self._measured(ident, Built.BUILT, log_path, outcome)
        except ImagekitError as exc:
            return outcome(Built.FAILED, message=f"{exc.message} ({exc.tip})" if exc.tip else exc.message)
        except Exception as exc:  # noqa: BLE001 - one image's surprise must not stop the others
            return outcome(Built.FAILED, message=f"{type(exc).__name__}: {exc}")

    def _measured(self, ident: Identity, state: Built, log: Path | None, outcome: Callable[..., BuildOutcome]) -> BuildOutcome:
        """Record the image's size and package manifest (reports/manifests/<id>.json), and fail it
        when it is over its size budget: then its tags are removed, so nothing over budget is left
        to test or publish (a rebuild from the build cache brings it back in seconds)."""
        image = ident.rendered.image
        size = self.engine.size(ident.content_tag)
        manifest: PackageManifest | str
        try:
            manifest = read_manifest(self.engine, ident.content_tag)
        except ImagekitError as exc:  # a site's own template may not write one; sizes still count
            manifest = exc.message
        layers = self.engine.history(ident.content_tag)
        record = {
            "image": image.id,
            "content_tag": ident.content_tag,
            "size": size,
            "manifest": manifest if isinstance(manifest, str) else manifest.as_dict(),
            "layers": [{"size": s, "created_by": c} for s, c in layers],
        }
        write_atomic(self.reports.manifest(image.id), json.dumps(record, indent=2) + "\n")
        budget = self.size_budgets.get(image.id)
        details = over_budget(size, budget, layers, manifest) if budget else []
        if details:
            for tag in ident.tags:
                self.engine.remove_image(tag)
            path = self.reports.log("size", image.id)
            write_atomic(path, "\n".join(details) + "\n")
            return outcome(
                Built.FAILED, log=path, size=size, details=tuple(details), message=f"{details[0]}; its tags were removed; see {path}"
            )
        return outcome(state, content_tag=ident.content_tag, log=log, size=size, message=f"{ident.content_tag}, {human(size)}")

    def docker_build(
        self,
        ident: Identity,
        secrets: dict[str, Path],
        tags: list[str],
        log_path: Path,
        on_line: Callable[[str], None],
        *,
        no_cache: bool = False,
    ) -> int:
        """Run the BuildKit build of ``ident`` into ``tags``, logging to ``log_path``; its exit code.
        Where the builder reaches equal digests through an OCI archive (reproducibility.py), the
        archive goes to a temporary file beside the build contexts, is loaded, and is removed."""
        image = ident.rendered.image
        context = ident.rendered.write(self.render_dir)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if ident.parent:
            build_args = {PARENT_ARG: self.engine.parent_reference(ident.parent.content_tag)}
        else:
            build_args = {BASE_ARG: self.engine.base_reference(image.base_image, ident.base_ref)}
        repro = self.reproducibility
        tarball = None
        if repro and repro.method == OCI:
            tarball = self.render_dir / ".oci" / f"{image.id}-{uuid.uuid4().hex[:8]}.tar"
            tarball.parent.mkdir(parents=True, exist_ok=True)
        argv, env = self.builder.command(
            context,
            tags,
            ident.labels(self.provenance),
            secrets,
            build_args,
            no_cache=no_cache,
            source_date_epoch=self.provenance.layer_epoch if repro and repro.source_date_epoch else None,
            oci_tarball=tarball,
            compression=image.compression,
            cache=RegistryCache(f"{self.cache_registry}/{image.repository}:buildcache-{image.id}", self.cache_export)
            if self.cache_registry and not no_cache
            else None,
        )
        # Line-buffered, so `tail -f` on the log follows the build as it happens.
        with log_path.open("w", encoding="utf-8", buffering=1) as log:
            log.write("$ " + " ".join(argv) + "\n")
            try:
                rc = self.runner.run(argv, env, log, on_line)
                if rc != 0 or tarball is None:
                    return rc
                on_line(f"loading {tarball.name}")
                log.write(f"$ docker load < {tarball}\n")
                self.engine.load(tarball, tags[0])
                for tag in tags[1:]:
                    self.engine.tag(tags[0], tag)
                log.write(f"loaded as {', '.join(tags)}: {(self.engine.inspect_image(tags[0]) or {}).get('Id')}\n")
                return 0
            finally:
                if tarball is not None:
                    tarball.unlink(missing_ok=True)


def _built_on(layers: list[str], parent_layers: list[str]) -> bool:
    return bool(parent_layers) and layers[: len(parent_layers)] == parent_layers


def build_images(
    rendered: list[Rendered],
    *,
    engine: Engine,
    builder: Builder,
    runner: BuildRunner,
    provenance: Provenance,
    jobs: int,
    render_dir: Path,
    reports: ReportsDir,
    size_budgets: dict[str, SizeBudget] | None = None,
    reproducibility: Reproducibility | None = None,
    cache_registry: str | None = None,
    cache_export: bool = False,
) -> list[BuildOutcome]:
    run = BuildRun(
        engine, builder, runner, provenance, render_dir, reports, size_budgets or {}, reproducibility, cache_registry, cache_export
    )
    board = console.StatusBoard([r.image.id for r in rendered])
    with pip_secrets({r.image.index_url for r in rendered}) as secrets, board.shown():
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            done: dict[str, BuildOutcome] = {}
            running: dict[Future[BuildOutcome], Rendered] = {}
            try:
                for ready in _schedule(rendered, done):
                    for r in ready:
                        parent = done.get(str(r.image.parent))
                        if parent is not None and not parent.state.ok:
                            message = f"not built: its parent {parent.image.id} {parent.state}"
                            board.set(r.image.id, Built.BLOCKED, message, final=True)
                            done[r.image.id] = BuildOutcome(image=r.image, state=Built.BLOCKED, seconds=0.0, message=message)
                        else:
                            running[pool.submit(run.one, r, secrets[r.image.index_url], board)] = r
                    finished: set[Future[BuildOutcome]] = set()
                    while running and not finished:
                        # In short waits: a signal that lands on a worker thread is only acted on
                        # when this (main) thread runs Python again, and Ctrl-C must not wait for a build.
                        finished, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                        for f in finished:
                            done[running.pop(f).image.id] = f.result()
            except KeyboardInterrupt:
                # Leaving the pool waits for running builds: stop them first.
                for f in running:
                    f.cancel()
                run.runner.stop_all()
                raise
    outcomes = [done[r.image.id] for r in rendered]
    write_suites(reports.build_junit, [Suite(BUILD_SUITE, [o.case() for o in outcomes])])
    return outcomes


def _schedule(rendered: list[Rendered], done: dict[str, object]) -> Iterator[list[Rendered]]:
    """Batches of images whose parent is done (or is not part of this run), until none is left.
    The caller records each finished image in ``done`` between batches."""
    ids = {r.image.id for r in rendered}
    waiting = list(rendered)
    while waiting:
        ready = [r for r in waiting if r.image.parent not in ids or r.image.parent in done]
        waiting = [r for r in waiting if r.image.parent in ids and r.image.parent not in done]
        yield ready
