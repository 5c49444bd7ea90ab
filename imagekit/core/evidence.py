"""Build once, test the staged digest on each runner class, promote: the records that travel between
those jobs, and the test evidence attached to a digest in the registry. Pure: formats and checks.

- A **staged record** (`reports/staged.json`, written by `imagekit stage`, handed to test and promote
  jobs as a CI artifact): image id → content id and the immutable reference it was pushed to.
- A **test result** (`imagekit test --staged`): what ran where — the runner class by name and by what
  the host showed (GPUs, driver, engine) — the verdict and counts, timings; stored in the staging
  repository as an OCI artifact whose `subject` is the tested image manifest (a registry with the
  referrers API lists it there) and whose tag follows the tag schema `sha256-<hex>.test-<class>`
  (found by name on any registry; one per class, the latest run's).

Both come back from outside (an artifact, a registry), so both are read as untrusted: every field
held to its grammar before anything uses it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from imagekit.core import grammar
from imagekit.errors import ConfigurationError

RESULT_TYPE = "application/vnd.imagekit.test-result.v1+json"
JUNIT_TYPE = "application/vnd.imagekit.junit.v1+xml"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# A reference as stage writes it: registry host and path, then the manifest's digest.
# The path is required (the lookahead: a '/' before the '@'): a staged image lives in a repository.
_STAGED_REF = re.compile(rf"(?=[^@]*/)(?P<name>{grammar.REGISTRY.pattern})@(?P<digest>sha256:[0-9a-f]{{64}})")
_IMAGE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_STAGED_FIELDS = {"image_id": _IMAGE_ID, "content_id": grammar.HEX64, "reference": _STAGED_REF}
_PRINTABLE = 200


def printable(value: object, limit: int = _PRINTABLE) -> str:
    """A string from outside, cut and made printable: it goes into tables and logs."""
    return "".join(c if c.isprintable() else "?" for c in str(value)[:limit])


@dataclass(frozen=True)
class StagedImage:
    image_id: str
    content_id: str
    reference: str  # host[:port]/path/repository@sha256:… — what test jobs pull and promote copies
    parent: str = ""  # an extension's parent, as its staged reference

    @property
    def name(self) -> str:
        return self.reference.split("@", 1)[0]

    @property
    def digest(self) -> str:
        return self.reference.split("@", 1)[1]


def read_staged(text: str, where: str) -> dict[str, StagedImage]:
    """``text`` (a staged.json) → image id → its record; ConfigurationError naming the entry and
    field of the first thing that is not as stage writes it."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigurationError(
            f"{where}: not JSON ({printable(exc, 120)})", tip="use the staged.json that `imagekit stage` wrote"
        ) from None
    if not isinstance(data, list):
        raise ConfigurationError(f"{where}: expected a list of staged images", tip="use the staged.json that `imagekit stage` wrote")
    found: dict[str, StagedImage] = {}
    for number, entry in enumerate(data, 1):
        at = f"{where}: entry {number}"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{at}: not an object", tip="use the staged.json that `imagekit stage` wrote")
        for name, pattern in _STAGED_FIELDS.items():
            value = entry.get(name)
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise ConfigurationError(
                    f"{at}: {name}: {printable(value, 80)!r} is not {'a staged reference (host/path@sha256:…)' if name == 'reference' else 'valid'}",
                    tip="use the staged.json that `imagekit stage` wrote; it is never edited by hand",
                )
        parent = entry.get("parent", "")
        if parent and not (isinstance(parent, str) and _STAGED_REF.fullmatch(parent)):
            raise ConfigurationError(
                f"{at}: parent: {printable(parent, 80)!r} is not a staged reference", tip="use the staged.json that `imagekit stage` wrote"
            )
        if entry["image_id"] in found:
            raise ConfigurationError(
                f"{at}: image_id: {entry['image_id']} is staged twice", tip="use the staged.json that `imagekit stage` wrote"
            )
        found[entry["image_id"]] = StagedImage(entry["image_id"], entry["content_id"], entry["reference"], parent)
    return found


def write_staged(images: dict[str, StagedImage]) -> str:
    return json.dumps([{k: v for k, v in asdict(s).items() if v} for s in images.values()], indent=2) + "\n"


def result_tag(digest: str, runner_class: str) -> str:
    """The tag-schema name of ``runner_class``'s result for the image ``digest``: at most 71 + 6 +
    40 characters, within Docker's 128."""
    return f"{digest.replace(':', '-')}.test-{runner_class}"


@dataclass(frozen=True)
class RunnerClass:
    """Where a suite ran: the matrix's name for the class, and what the host itself showed."""

    name: str
    gpus: tuple[str, ...] = ()  # one name per GPU nvidia-smi saw, e.g. "NVIDIA H100 80GB HBM3"
    driver: str = ""  # the NVIDIA driver, "" without one
    engine: str = ""  # e.g. "Engine 28.5.2, containerd image store"

    def describe(self) -> str:
        gpus = f"{len(self.gpus)}× {self.gpus[0]}" if self.gpus else "no GPU"
        return f"{self.name} ({gpus}{f', driver {self.driver}' if self.driver else ''}; {self.engine})"


@dataclass(frozen=True)
class SuiteResult:
    image_id: str
    content_id: str
    digest: str  # the tested image manifest's digest: the subject the result is attached to
    runner_class: RunnerClass
    state: str  # passed | failed | error (outcomes.Tested's text)
    passed: int
    failed: int
    skipped: int
    seconds: float
    recorded: str  # UTC, ISO 8601
    timings: dict[str, Any] = field(default_factory=dict)  # the suite's timings.json, when it wrote one

    @property
    def ok(self) -> bool:
        return self.state == "passed"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()


def read_result(body: bytes) -> SuiteResult | None:
    """A result blob from a registry, or None when it is not one (then it proves nothing)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("runner_class"), dict):
        return None
    rc = data["runner_class"]
    try:
        runner = RunnerClass(
            name=_checked(rc.get("name"), grammar.NAME),
            gpus=tuple(printable(g) for g in rc.get("gpus") or () if isinstance(g, str))[:64],
            driver=printable(rc.get("driver") or "", 40),
            engine=printable(rc.get("engine") or "", 120),
        )
        result = SuiteResult(
            image_id=_checked(data.get("image_id"), _IMAGE_ID),
            content_id=_checked(data.get("content_id"), grammar.HEX64),
            digest=_checked(data.get("digest"), grammar.DIGEST),
            runner_class=runner,
            state=_checked(data.get("state"), re.compile(r"passed|failed|error")),
            passed=_count(data.get("passed")),
            failed=_count(data.get("failed")),
            skipped=_count(data.get("skipped")),
            seconds=float(data.get("seconds") or 0.0) if type(data.get("seconds") or 0.0) in (int, float) else 0.0,
            recorded=printable(data.get("recorded") or "", 40),
            timings=data.get("timings") if isinstance(data.get("timings"), dict) else {},
        )
    except (ValueError, TypeError, OverflowError):
        return None
    return result


def _checked(value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(value)
    return value


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(value)
    return value


def descriptor(media_type: str, digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size}


def artifact_manifest(subject: dict[str, Any], blobs: list[dict[str, Any]], annotations: dict[str, str]) -> bytes:
    """An OCI 1.1 artifact manifest (an image manifest with `artifactType`, the empty config and a
    `subject`): the shape `oras attach` and cosign write, which registries without the 1.1 API store
    as an ordinary manifest."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": RESULT_TYPE,
        "config": descriptor(EMPTY_TYPE, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", 2),
        "layers": blobs,
        "subject": subject,
        "annotations": annotations,
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def artifact_blobs(manifest: dict[str, Any]) -> dict[str, str]:
    """Media type → digest of an artifact manifest's blobs (result, JUnit), held to the grammar."""
    found: dict[str, str] = {}
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        return found
    for layer in layers:
        if isinstance(layer, dict) and isinstance(layer.get("digest"), str) and grammar.full(grammar.DIGEST, layer["digest"]):
            found[str(layer.get("mediaType"))] = layer["digest"]
    return found


def manifest_blobs(manifest: dict[str, Any]) -> list[str]:
    """Every blob digest an image manifest names (config first), held to the grammar: what a copy
    into another repository must mount."""
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise ValueError("a manifest without a list of layers")
    blobs = [manifest.get("config"), *layers]
    digests = [b.get("digest") for b in blobs if isinstance(b, dict)]
    if len(digests) != len(blobs) or not all(isinstance(d, str) and grammar.full(grammar.DIGEST, d) for d in digests):
        raise ValueError("a manifest whose blobs are not sha256 digests")
    return [str(d) for d in digests]
