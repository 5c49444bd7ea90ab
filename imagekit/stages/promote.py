"""Staged digests → the release repository, once every runner class the matrix requires has passed
that very digest (README "Staging, runner classes and promotion").

A promotion moves no layer: each blob is mounted from the staging repository into the release one
(same registry), then the staged manifest's exact bytes are put under the release tags, immutable
first, so the release digest is the tested digest. The results are copied beside it the same way,
so the evidence travels with the image. An immutable tag already naming other content is never
overwritten; an extension goes only after its parent's staged digest is in the release repository.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from imagekit import console
from imagekit.adapters.registry import RawManifest, split_reference
from imagekit.core import evidence as ev
from imagekit.core.evidence import StagedImage, SuiteResult
from imagekit.core.matrix import ImageSpec
from imagekit.errors import ImagekitError, SigningError
from imagekit.outcomes import Promoted
from imagekit.stages.evidence import Evidence
from imagekit.stages.ports import RegistryClient, Signer
from imagekit.stages.publish import Retry
from imagekit.stages.signing import check


@dataclass
class PromoteOutcome:
    image_id: str
    state: Promoted
    message: str = ""
    tags: list[str] = field(default_factory=list)
    digest: str = ""
    staged: str = ""  # the staging reference it was copied from
    parent: str = ""
    tested_on: list[dict[str, object]] = field(default_factory=list)  # one per required class: what passed where
    evidence: list[str] = field(default_factory=list)  # what verified for the digest, when a key checks it

    def record(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k not in ("state", "message") and (k not in ("parent", "evidence") or v)}


def verdicts(
    staged: StagedImage, required: tuple[str, ...], evidence: Evidence, retry: Retry
) -> tuple[list[tuple[SuiteResult, RawManifest]], list[str]]:
    """The passing results of each required class for the staged digest (each with the artifact
    manifest that holds it), and what is missing."""
    passes, missing = [], []
    for name in required:
        found = retry.run(f"read {name}'s result", lambda name=name: evidence.recorded(staged, name))
        if found is None:
            missing.append(f"{name}: no result for {staged.digest[:19]}")
        elif not found[0].ok:
            r = found[0]
            missing.append(f"{name}: {r.state} ({r.failed} failed) at {r.recorded}")
        else:
            passes.append(found)
    return passes, missing


@dataclass
class Promoter:
    registry: RegistryClient
    release: str  # host[:port]/path, on the same registry as the staged images
    required: dict[str, tuple[str, ...]]  # image id → the runner classes that must pass it
    evidence: Evidence
    dry_run: bool = False
    retry: Retry = field(default_factory=Retry)
    done: dict[str, str] = field(default_factory=dict)  # image id → promoted digest, this run
    # The site's public key (stages/signing.py): the staged digest's signature, SBOM and a verified pass
    # of each required class must verify before promotion, and do again at the release reference.
    signer: Signer | None = None

    def one(self, image: ImageSpec, staged: StagedImage | None) -> PromoteOutcome:
        out = PromoteOutcome(image.id, Promoted.REFUSED)
        if staged is None:
            out.message = "not in the staged record: stage it (`imagekit stage`) and test it on its runner classes first"
            return out
        out.staged = staged.reference
        required = self.required.get(image.id, ())
        if not required:
            out.message = (
                "the matrix requires no runner class for it (ci.require), so nothing proves it: name the classes that must pass it"
            )
            return out
        try:
            host, release_path = split_reference(f"{self.release}/{image.repository}")
            staged_host, staged_path = split_reference(staged.name)
            if staged_host != host:
                out.message = (
                    f"staged on {staged_host}, released to {host}: promotion copies within one registry (by cross-repository mounts)"
                )
                return out
            passes, missing = verdicts(staged, required, self.evidence, self.retry)
            if missing:
                out.message = "missing a pass on " + "; ".join(missing)
                return out
            if self.signer is not None:
                checked = check(self.signer, staged.reference, staged.content_id, required)
                if not checked.ok:
                    out.message = "its evidence does not verify: " + "; ".join(checked.problems)
                    return out
            out.tested_on = [{"class": r.runner_class.name, "gpus": list(r.runner_class.gpus), "driver": r.runner_class.driver,
                              "engine": r.runner_class.engine, "recorded": r.recorded, "passed": r.passed, "skipped": r.skipped}
                             for r, _ in passes]  # fmt: skip
            if image.parent is not None:
                refusal = self._parent_refusal(image, staged)
                if refusal:
                    out.message = refusal
                    return out
            return self._copy(image, staged, staged_path, release_path, [raw for _, raw in passes], out)
        except ImagekitError as exc:
            out.state, out.message = Promoted.FAILED, exc.message
            return out

    def _parent_refusal(self, image: ImageSpec, staged: StagedImage) -> str | None:
        """Why an extension may not go yet: the release repository must serve the exact parent it
        was staged on (staged.json records it), promoted earlier or in this run."""
        if not staged.parent:
            return f"its staged record names no parent ({image.parent}): stage it again"
        parent_digest = staged.parent.rsplit("@", 1)[1]
        if self.done.get(str(image.parent)) == parent_digest:
            return None
        # The parent's repository: the extension's base image is the parent's tag, repository:id.
        _, parent_path = split_reference(f"{self.release}/{image.base_image.rsplit(':', 1)[0]}")
        found = self.retry.run(
            f"read parent {parent_path}@{parent_digest[:19]}", lambda: self.registry.raw_manifest(parent_path, parent_digest)
        )
        if found is None:
            return f"its parent {image.parent} ({parent_digest[:19]}, the one it was staged on) is not in the release repository: promote it first (include it in --only)"
        return None

    def _copy(
        self, image: ImageSpec, staged: StagedImage, staged_path: str, release_path: str, results: list[RawManifest], out: PromoteOutcome
    ) -> PromoteOutcome:
        immutable = f"{image.id}-{staged.content_id[:12]}"
        target = f"{self.registry_host()}/{release_path}"
        out.tags = [f"{target}:{immutable}", f"{target}:{image.id}"]
        existing = self.retry.run(f"read {target}:{immutable}", lambda: self.registry.raw_manifest(release_path, immutable))
        if existing is not None and existing.digest != staged.digest:
            out.message = f"{target}:{immutable} already names {existing.digest[:19]}, not the staged {staged.digest[:19]}; immutable tags are never overwritten"
            return out
        moving = self.retry.run(f"read {target}:{image.id}", lambda: self.registry.raw_manifest(release_path, image.id))
        if self.dry_run:
            self.done[image.id] = staged.digest  # its extensions may follow it in the plan
            out.state = Promoted.PLANNED
            out.message = f"copy {staged.reference} to {', '.join(out.tags)}"
            return out
        manifest = self.retry.run(f"read {staged.reference}", lambda: self.registry.raw_manifest(staged_path, staged.digest))
        if manifest is None:
            raise ImagekitError(f"{staged.reference} is no longer in the staging repository")
        try:
            blobs = ev.manifest_blobs(manifest.json())
        except ValueError as exc:
            raise ImagekitError(f"{staged.reference}: {exc}") from None
        self._mount(blobs, release_path, staged_path)
        # Immutable tag first, then the evidence beside it, checked there; the moving tag last, so it
        # never names a digest that lacks its immutable tag or whose evidence did not verify.
        self._tag(release_path, target, immutable, manifest, staged.digest)
        for result, passed in zip(results, out.tested_on, strict=True):  # the very evidence checked, beside the release digest
            tag = ev.result_tag(staged.digest, str(passed["class"]))
            try:
                result_blobs = ev.manifest_blobs(result.json())
            except ValueError as exc:
                raise ImagekitError(f"{tag}: {exc}") from None
            self._mount(result_blobs, release_path, staged_path)
            self.retry.run(f"copy {tag}", lambda tag=tag, result=result: self.registry.put_manifest(release_path, tag, result))
        if self.signer is not None:
            out.evidence = self._copy_evidence(staged, staged_path, release_path, f"{target}@{staged.digest}", out)
        self._tag(release_path, target, image.id, manifest, staged.digest)
        self.done[image.id] = staged.digest
        out.digest = staged.digest
        already = existing is not None and moving is not None and moving.digest == staged.digest
        out.state = Promoted.UNCHANGED if already else Promoted.PROMOTED
        out.message = f"{target}@{staged.digest}"
        return out

    def _tag(self, release_path: str, target: str, tag: str, manifest: RawManifest, digest: str) -> None:
        self.retry.run(f"tag {target}:{tag}", lambda: self.registry.put_manifest(release_path, tag, manifest))
        back = self.retry.run(f"read back {target}:{tag}", lambda: self.registry.raw_manifest(release_path, tag))
        if back is None or back.digest != digest:
            raise ImagekitError(f"{target}:{tag} serves {back.digest[:19] if back else 'nothing'}, not {digest[:19]}")

    def _copy_evidence(self, staged: StagedImage, staged_path: str, release_path: str, released: str, out: PromoteOutcome) -> list[str]:
        """cosign's signature and attestations (its tag schema) copied beside the release digest as
        the results are, blobs mounted; then verified there, as a consumer of the release will. What
        the release repository held under those tags is replaced: the staging repository's are the
        ones this promotion checked."""
        for suffix in ("sig", "att"):
            tag = f"{staged.digest.replace(':', '-')}.{suffix}"
            found = self.retry.run(f"read {tag}", lambda tag=tag: self.registry.raw_manifest(staged_path, tag))
            if found is None:
                raise SigningError(f"{staged.name}:{tag} went missing while promoting")
            try:
                self._mount(ev.manifest_blobs(found.json()), release_path, staged_path)
            except ValueError as exc:
                raise SigningError(f"{tag}: {exc}") from None
            self.retry.run(f"copy {tag}", lambda tag=tag, found=found: self.registry.put_manifest(release_path, tag, found))
        assert self.signer is not None
        checked = check(self.signer, released, staged.content_id, self.required.get(out.image_id, ()))
        if not checked.ok:
            raise SigningError(f"{released}: its evidence does not verify after the copy: {'; '.join(checked.problems)}")
        return checked.lines()

    def _mount(self, blobs: list[str], release_path: str, staged_path: str) -> None:
        for digest in blobs:
            if not self.retry.run(f"check {digest[:19]}", lambda d=digest: self.registry.has_blob(release_path, d)):
                self.retry.run(f"mount {digest[:19]}", lambda d=digest: self.registry.mount_blob(release_path, d, staged_path))

    def registry_host(self) -> str:
        return split_reference(self.release)[0]


def promote_images(images: list[ImageSpec], staged: dict[str, StagedImage], promoter: Promoter) -> list[PromoteOutcome]:
    board = console.StatusBoard([i.id for i in images])
    outcomes = []
    with board.shown():
        for image in images:  # matrix order: parents before their extensions
            board.set(image.id, "planning" if promoter.dry_run else "promoting")
            outcome = promoter.one(image, staged.get(image.id))
            board.set(image.id, outcome.state, outcome.message, final=True)
            outcomes.append(outcome)
    return outcomes
