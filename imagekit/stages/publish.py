"""Tested images → the registry, immutable tag first, digest read back; and built images → the
staging repository (`imagekit stage`: no test gate, the immutable tag alone), where test jobs pull
them by digest and `imagekit promote` copies them from (stages/promote.py).

Rules (README "Publishing"): only an image whose smoke report passed for the same content id is
published; an immutable tag already in the registry with other content is never overwritten; the
moving tag moves only after the immutable one is in and read back; an extension goes only after
the exact parent it was built on is in the registry; transient registry errors are retried with
backoff; an image counts as published only when every step succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from imagekit import console
from imagekit.adapters.registry import ImageKey, Manifest, split_reference
from imagekit.core.identity import Identity
from imagekit.core.render import Rendered
from imagekit.errors import ImagekitError, RegistryError
from imagekit.outcomes import Published
from imagekit.reports import CONTENT_ID_PROPERTY, ReportsDir, smoke_verdict
from imagekit.stages.identity import resolve_identity
from imagekit.stages.ports import Engine, RegistryClient
from imagekit.stages.signing import Signing

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    attempts: int = 4
    backoff_s: float = 2.0  # doubled after each failed attempt

    def run(self, what: str, action: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return action()
            except RegistryError as exc:
                if not exc.transient or attempt == self.attempts:
                    raise RegistryError(
                        f"{exc.message} (attempt {attempt} of {self.attempts})", transient=exc.transient, tip=exc.tip
                    ) from None
                delay = self.backoff_s * 2 ** (attempt - 1)
                console.warn(f"{what}: {exc.message}; retrying in {delay:.0f}s")
                time.sleep(delay)
        raise AssertionError("unreachable")


@dataclass
class PublishOutcome:
    image_id: str
    state: Published
    message: str = ""
    tags: list[str] = field(default_factory=list)
    digest: str = ""
    size: int = 0
    report: str = ""
    parent: str = ""  # an extension's parent, as registry/repository@digest
    content_id: str = ""
    reference: str = ""  # registry/repository@digest
    evidence: list[str] = field(default_factory=list)  # what verified for the digest, when signing is on

    def record(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k not in ("state", "message") and (k not in ("parent", "report", "evidence") or v)}


def gate(ident: Identity, report: Path) -> str | None:
    """Why this image may not be published, or None when its smoke report passed for this content."""
    if not report.is_file():
        return f"no smoke report at {report}: run `imagekit test` first"
    verdict = smoke_verdict(report)
    if verdict is None:
        return f"its smoke report {report} is not JUnit XML: run `imagekit test` again"
    if verdict.content_id is None:
        return f"its smoke report {report} records no content id ({CONTENT_ID_PROPERTY}), so it proves nothing about this image: run `imagekit test`"
    if verdict.content_id != ident.content_id:
        return f"its smoke report is for content {verdict.content_id[:12]}, not {ident.content_id[:12]} (the image changed since it was tested): run `imagekit test`"
    if verdict.failed:
        return f"its smoke report has {len(verdict.failed)} failed test(s): {', '.join(sorted(set(verdict.failed))[:5])}"
    if not verdict.cases:
        return "its smoke report holds no tests"
    return None


@dataclass
class Publisher:
    engine: Engine
    registry: RegistryClient  # the registry_ref's host, for read-backs
    auth: dict[str, str] | None  # what the engine's push sends (None: the engine's own credentials)
    registry_ref: str  # host[:port]/path
    reports: ReportsDir
    dry_run: bool = False
    retry: Retry = field(default_factory=Retry)
    # Images this run has published (or, in a dry run, would publish): an extension may follow them.
    done: set[str] = field(default_factory=set)
    # Staging (`imagekit stage`) pushes untested images under their immutable tag alone: the test
    # jobs that follow make the evidence, and promotion puts the moving tag on in the release repository.
    staging: bool = False
    # Signing on (IMAGEKIT_SIGNING_KEY): each pushed digest gets its signature, SBOM and (publish)
    # smoke-test attestation, verified before the moving tag moves.
    signing: Signing | None = None

    def __post_init__(self) -> None:
        self.host, _ = split_reference(self.registry_ref)

    def one(self, rendered: Rendered) -> PublishOutcome:
        image = rendered.image
        out = PublishOutcome(image.id, Published.REFUSED)
        ident = resolve_identity(self.engine, rendered, pull=False)
        if ident is None or (key := self.engine.key(ident.content_tag)) is None:
            out.message = "not built from the current matrix and templates: run `imagekit build` and `imagekit test`"
            return out
        out.content_id = ident.content_id
        if not self.staging:
            report = self.reports.test_junit(image.id)
            refusal = gate(ident, report)
            if refusal:
                out.message = refusal
                return out
            out.report = str(report)

        target = f"{self.registry_ref}/{image.repository}"
        _, path = split_reference(target)
        immutable, moving = ident.content_tag.rsplit(":", 1)[1], image.id
        out.tags = [f"{target}:{immutable}"] + ([] if self.staging else [f"{target}:{moving}"])
        try:
            if ident.parent is not None:
                refusal = self._parent_refusal(ident.parent, ident.base_ref, out)
                if refusal:
                    out.message = refusal
                    return out
            existing = self.retry.run(f"{image.id}: read {target}:{immutable}", lambda: self.registry.manifest(path, immutable))
            if self.staging and existing is not None and not key.served_by(existing) and self._same_content(path, existing, ident):
                # Staged already from the same inputs by another builder (a pull request's run, a
                # builder of another reproducibility level): test jobs pull by digest, so that image
                # is the one to test and promote; this one is not pushed over it.
                out.state, out.digest, out.size = Published.UNCHANGED, existing.digest, existing.size
                out.reference = out.message = f"{target}@{existing.digest}"
                if self.signing is not None:  # it may have been staged without a key: what is missing is added
                    out.evidence = self.signing.ensure(rendered, ident.content_id, out.reference, out.parent, None).lines()
                return out
            if existing is not None and not key.served_by(existing):
                out.message = (f"{target}:{immutable} already exists with other content ({_described(existing, key)}, "
                               f"this image's {key.of} {key.digest[:19]}); immutable tags are never overwritten")  # fmt: skip
                return out
            if self.dry_run:
                out.state = Published.PLANNED
                out.message = f"{'moving tag only: ' if existing else ''}push {', '.join(out.tags)}"
                return out
            pushed = self._push(target, immutable, ident.content_tag) if existing is None else existing.digest
            manifest = self._read_back(path, immutable, key, pushed)
            if self.signing is not None:
                report = None if self.staging else self.reports.test_junit(image.id)
                checked = self.signing.ensure(rendered, ident.content_id, f"{target}@{manifest.digest}", out.parent, report)
                out.evidence = checked.lines()
            if not self.staging:
                moved = self._read_back(path, moving, key, self._push(target, moving, ident.content_tag))
                if moved.digest != manifest.digest:
                    raise RegistryError(f"{target}:{moving} and {target}:{immutable} name different manifests", transient=False)
        except ImagekitError as exc:
            out.state, out.message = Published.FAILED, exc.message
            return out
        out.state = Published.UNCHANGED if existing is not None else Published.PUBLISHED
        out.digest, out.size = manifest.digest, manifest.size
        out.reference = out.message = f"{target}@{manifest.digest}"
        return out

    def _same_content(self, path: str, manifest: Manifest, ident: Identity) -> bool:
        config = self.retry.run(f"read the config of {path}", lambda: self.registry.config(path, manifest.config_digest))
        labels = (config.get("config") or {}).get("Labels") if isinstance(config.get("config"), dict) else None
        return isinstance(labels, dict) and labels.get("io.imagekit.content-id") == ident.content_id

    def _parent_refusal(self, parent: Identity, parent_image_id: str, out: PublishOutcome) -> str | None:
        """Why an extension may not go yet: the registry must serve the very parent it was built on
        (the parent image id folded into the extension's content id)."""
        image = parent.rendered.image
        if self.dry_run and image.id in self.done:
            out.parent = "(published first, in this run)"
            return None
        target = f"{self.registry_ref}/{image.repository}"
        _, path = split_reference(target)
        tag = parent.content_tag.rsplit(":", 1)[1]
        manifest = self.retry.run(f"read parent {target}:{tag}", lambda: self.registry.manifest(path, tag))
        parent_key = self.engine.key(parent.content_tag)
        if parent_key is None or parent_key.digest != parent_image_id or not parent_key.served_by(manifest):
            return (f"its parent {image.id} is not in the registry with the content it was built on ({target}:{tag}): "
                    "publish the parent first (include it in --only)")  # fmt: skip
        out.parent = f"{target}@{manifest.digest}"
        return None

    def _push(self, target: str, tag: str, local: str) -> str:
        """Push ``local`` as ``target:tag``; the manifest digest the push reported."""
        self.engine.tag(local, f"{target}:{tag}")
        return self.retry.run(f"push {target}:{tag}", lambda: self.engine.push(target, tag, self.auth))

    def _read_back(self, path: str, tag: str, key: ImageKey, pushed: str) -> Manifest:
        """What the registry serves under ``tag`` must be what was pushed: the manifest digest the
        push reported, and this very image (its local id, by what the store makes it the digest of)."""
        manifest = self.retry.run(f"read back {path}:{tag}", lambda: self.registry.manifest(path, tag))
        if manifest is None or manifest.digest != pushed or not key.served_by(manifest):
            found = _described(manifest, key) if manifest else "nothing"
            raise RegistryError(
                f"{self.host}/{path}:{tag} serves {found}, not the pushed {pushed} ({key.of} {key.digest})", transient=False
            )
        return manifest


def _described(manifest: Manifest, key: ImageKey) -> str:
    return f"manifest {manifest.digest[:19]}" if key.of == "manifest" else f"config {manifest.config_digest[:19]}"


def publish_images(rendered: list[Rendered], publisher: Publisher) -> list[PublishOutcome]:
    board = console.StatusBoard([r.image.id for r in rendered])
    outcomes = []
    try:
        with board.shown():
            # One at a time: the registry and the uplink are the bottleneck, and the order
            # (immutable tag, read back, moving tag) must hold per image.
            for r in rendered:
                board.set(r.image.id, "planning" if publisher.dry_run else "staging" if publisher.staging else "publishing")
                outcome = publisher.one(r)
                if outcome.state.ok:
                    publisher.done.add(r.image.id)
                board.set(r.image.id, outcome.state, outcome.message, final=True)
                outcomes.append(outcome)
    finally:
        publisher.registry.close()
    return outcomes
