"""Signed evidence on a pushed digest (README "Signing and evidence"): a signature, a CycloneDX SBOM
attestation and a smoke-test attestation, written with the site's key after a push, and checked with
its public key before a tag moves (publish), before promotion, and by `imagekit check`.

What is attached is checked again at once through the same verification a consumer runs, so a
publish that says "signed" has read its evidence back, as pushes read back their manifests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imagekit.core import attestation as at
from imagekit.core.attestation import SmokeEvidence, Statement
from imagekit.core.evidence import RunnerClass, SuiteResult, printable
from imagekit.core.lock import Lock
from imagekit.core.render import Rendered
from imagekit.core.sbom import Base, Subject, cyclonedx
from imagekit.errors import ImagekitError, SigningError
from imagekit.reports import summarise
from imagekit.stages.inspect import read_manifest
from imagekit.stages.ports import ImageStore, Signer


@dataclass(frozen=True)
class Checked:
    """What verified for one digest, and what did not."""

    reference: str  # host/path@sha256:…
    signatures: int = 0
    sbom: dict[str, Any] | None = None  # the verified SBOM (predicate), when one verified
    smoke: tuple[SmokeEvidence, ...] = ()  # verified smoke results about this content
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        found = [f"signature: {self.signatures} verified" if self.signatures else "signature: none verified"]
        if self.sbom is not None:
            components = self.sbom.get("components") if isinstance(self.sbom.get("components"), list) else []
            kinds = [str(c.get("purl", "")).split("/", 1)[0] for c in components if isinstance(c, dict)]
            found.append(f"SBOM: CycloneDX {printable(self.sbom.get('specVersion'), 8)}, {len(components)} components "
                         f"({kinds.count('pkg:pypi')} pip, {kinds.count('pkg:deb')} apt)")  # fmt: skip
        else:
            found.append("SBOM: none verified")
        found += [f"tests: {s.describe()}" for s in self.smoke] or ["tests: none verified"]
        return found + [f"problem: {p}" for p in self.problems]


def check(signer: Signer, reference: str, content_id: str | None, required: tuple[str, ...] = (), *, tests: bool = True) -> Checked:
    """Verify ``reference``'s (host/path@sha256:…) signature, SBOM and smoke-test attestations.
    ``content_id``: the image's own (its label), which the evidence must name; ``required``: runner
    classes that must each have a verified pass (any one pass when empty); ``tests`` False: a staged
    image, whose tests come later, needs its signature and SBOM only."""
    digest = reference.rsplit("@", 1)[1]
    problems = []
    signatures = 0
    try:
        signatures = at.signatures_for(signer.verify(reference), digest)
    except SigningError as exc:
        problems.append(f"signature: {exc.message}")
    else:
        if not signatures:
            problems.append(f"signature: no image signature names {digest[:19]}")
    sbom = None
    for statement in _verified(signer, reference, "cyclonedx", at.CYCLONEDX_PREDICATE, digest, problems, "SBOM"):
        if _sbom_names(statement.predicate, content_id):
            sbom = statement.predicate
    if sbom is None and not any(p.startswith("SBOM") for p in problems):
        problems.append(f"SBOM: no CycloneDX SBOM names content {str(content_id)[:12]}")
    smoke = []
    for statement in (
        []
        if not tests and not required
        else _verified(signer, reference, at.SMOKE_PREDICATE, at.SMOKE_PREDICATE, digest, problems, "tests")
    ):
        found = at.smoke_evidence(statement)
        if found is not None and (content_id is None or found.content_id == content_id):
            smoke.append(found)
    # Attestations pile up: a class's latest result is its verdict, so a later failure outweighs an earlier pass.
    latest: dict[str, SmokeEvidence] = {}
    for found in smoke:
        if found.runner_class not in latest or found.recorded >= latest[found.runner_class].recorded:
            latest[found.runner_class] = found
    if tests and not any(p.startswith("tests") for p in problems):
        if not any(s.ok for s in latest.values()):
            problems.append("tests: no verified passing smoke-test attestation for this content (each class's latest result counts)")
        for name in required:
            if name not in latest or not latest[name].ok:
                problems.append(f"tests: no verified pass on runner class {name} (its latest result counts)")
    return Checked(reference, signatures, sbom, tuple(smoke), tuple(problems))


def _verified(
    signer: Signer, reference: str, asked: str, predicate_type: str, digest: str, problems: list[str], what: str
) -> list[Statement]:
    try:
        output = signer.verify_attestations(reference, asked)
    except SigningError as exc:
        problems.append(f"{what}: {exc.message}")
        return []
    return [s for s in at.statements(output) if s.predicate_type == predicate_type and s.about(digest)]


def _sbom_names(predicate: dict[str, Any], content_id: str | None) -> bool:
    if predicate.get("bomFormat") != "CycloneDX":
        return False
    if content_id is None:
        return True
    component = (predicate.get("metadata") or {}).get("component") if isinstance(predicate.get("metadata"), dict) else None
    properties = component.get("properties") if isinstance(component, dict) else None
    return isinstance(properties, list) and {"name": "imagekit:content-id", "value": content_id} in properties


# cosign's words for a registry it could not read (not for evidence that is absent or does not verify).
_UNREACHABLE = ("took over", "connection refused", "no such host", "i/o timeout", "UNAUTHORIZED", "DENIED", "status code 5")


@dataclass
class Signing:
    """Writes a pushed image's evidence with the site's key and reads it back. ``runner``: where this
    host ran the suite that publish is gated on."""

    signer: Signer
    lock: Lock
    engine: ImageStore
    runner: RunnerClass

    def ensure(self, rendered: Rendered, content_id: str, reference: str, parent: str, report: Path | None) -> Checked:
        """``reference``'s evidence, verified: what is missing is written (a digest published before
        keeps its signature, no second one is added), then all of it is checked again.
        ``report``: the smoke report to attest (None when staging: test jobs attest theirs)."""
        tests = report is not None
        before = check(self.signer, reference, content_id, tests=tests)
        if before.ok:
            return before
        unreachable = [p for p in before.problems if any(w in p for w in _UNREACHABLE)]
        if unreachable:  # not "missing": writing now could add a second signature to what is there
            raise SigningError(f"its evidence could not be read: {'; '.join(unreachable)}")
        image = rendered.image
        if not before.signatures:
            self.signer.sign(reference)
        if before.sbom is None:
            self.signer.attest(reference, "cyclonedx", self.sbom(rendered, content_id, reference, parent))
        if report is not None and not any(s.ok for s in before.smoke):
            digest = reference.rsplit("@", 1)[1]
            self.signer.attest(reference, at.SMOKE_PREDICATE, local_smoke(image.id, content_id, digest, report, self.runner))
        after = check(self.signer, reference, content_id, tests=tests)
        if not after.ok:
            raise SigningError(f"its evidence does not verify after signing: {'; '.join(after.problems)}")
        return after

    def sbom(self, rendered: Rendered, content_id: str, reference: str, parent: str) -> bytes:
        image = rendered.image
        if image.id not in self.lock.images:
            raise ImagekitError(f"{image.id} is not in the lock {self.lock.path}: no SBOM can be made for it")
        # An extension's pip set is complete; its apt pins are its own, its parent's are the parent's.
        chain = [self.lock.images[image.id]] + ([self.lock.images[image.parent]] if image.parent in self.lock.images else [])
        name, digest = reference.rsplit("@", 1)
        if parent:
            base = Base(*parent.rsplit("@", 1), pullable=True)
        elif rendered.base_lock and "@" in rendered.base_lock:
            base = Base(*rendered.base_lock.rsplit("@", 1), pullable=True)
        else:  # a local base (scripts/make-local-base): its image id, which no registry serves
            base = Base(image.base_image, rendered.base_lock or "", pullable=False)
        manifest = read_manifest(self.engine, image.tag)
        return json.dumps(cyclonedx(image, chain, manifest, Subject(name, digest, content_id), base), indent=1).encode()


def local_smoke(image_id: str, content_id: str, digest: str, report: Path, runner: RunnerClass) -> bytes:
    """The smoke predicate of a suite this host ran (the report publish was gated on)."""
    s = summarise(report)
    props = s.properties
    gpus = [props[k] for k in sorted(props) if k.startswith("gpu.") and k.endswith(".name")]
    runner_dict = {
        "name": runner.name,
        "gpus": gpus or list(runner.gpus),
        "driver": props.get("gpu.driver", runner.driver),
        "engine": runner.engine,
    }
    recorded = datetime.fromtimestamp(report.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    predicate = at.smoke_predicate(
        image_id=image_id, content_id=content_id, digest=digest, result="failed" if s.failed else "passed",
        counts=(s.passed, s.failed, s.skipped), runner=runner_dict, seconds=s.time, recorded=recorded,
        junit=report.read_bytes(), properties=props,
    )  # fmt: skip
    return json.dumps(predicate, indent=1).encode()


def staged_smoke(result: SuiteResult, junit: bytes, properties: dict[str, str]) -> bytes:
    """The smoke predicate of a staged digest's run on a runner class (`imagekit test --staged`)."""
    r = result.runner_class
    predicate = at.smoke_predicate(
        image_id=result.image_id, content_id=result.content_id, digest=result.digest, result=result.state,
        counts=(result.passed, result.failed, result.skipped),
        runner={"name": r.name, "gpus": list(r.gpus), "driver": r.driver, "engine": r.engine},
        seconds=result.seconds, recorded=result.recorded, junit=junit, properties=properties,
    )  # fmt: skip
    return json.dumps(predicate, indent=1).encode()
