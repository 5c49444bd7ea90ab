"""Signed evidence about an image digest (README "Signing and evidence"): the smoke-test predicate we
define, and the checks that make a verified attestation mean something. Pure: formats and checks.

cosign verifies that an attestation was signed by the key; it does not say the attestation is about
this digest, of the type asked for, or that the suite passed. Those checks are here, on the in-toto
statements cosign prints once it has verified their signatures, which come from a registry anyone
with push access may write to: every field is held to its shape before anything uses it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from imagekit.core import grammar
from imagekit.core.evidence import printable as text

# Ours: a name, not a document to fetch (in-toto predicate types are URIs by convention).
SMOKE_PREDICATE = "https://imagekit.dev/attestations/smoke-test/v1"
CYCLONEDX_PREDICATE = "https://cyclonedx.org/bom"  # what `cosign attest --type cyclonedx` writes
STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")
# `cosign verify` prints one JSON object per signature; an image signature says so in `critical.type`.
SIGNATURE_TYPE = "cosign container image signature"
_RESULT = re.compile(r"passed|failed|error")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Statement:
    """A verified in-toto statement about ``digest``."""

    predicate_type: str
    subjects: tuple[str, ...]  # sha256:… digests the statement names
    predicate: dict[str, Any]

    def about(self, digest: str) -> bool:
        return digest in self.subjects


def signatures_for(output: str, digest: str) -> int:
    """How many image signatures in `cosign verify`'s output name ``digest``. cosign 3 also prints
    attestations it verified as signatures (their `critical.type` is the predicate type): only an
    image signature counts."""
    try:
        found = json.loads(output)
    except (ValueError, RecursionError):
        return 0
    count = 0
    for item in found if isinstance(found, list) else ():
        critical = item.get("critical") if isinstance(item, dict) else None
        if not isinstance(critical, dict) or critical.get("type") != SIGNATURE_TYPE:
            continue
        image = critical.get("image")
        if isinstance(image, dict) and image.get("docker-manifest-digest") == digest:
            count += 1
    return count


def statements(output: str) -> list[Statement]:
    """The in-toto statements in `cosign verify-attestation`'s output (one DSSE envelope per line);
    lines that are not one are skipped: they prove nothing."""
    found = []
    for line in output.splitlines():
        try:
            envelope = json.loads(line)
            payload = json.loads(base64.b64decode(envelope["payload"], validate=True)) if isinstance(envelope, dict) else None
        except (ValueError, KeyError, TypeError, RecursionError, binascii.Error):
            continue
        statement = _statement(payload)
        if statement is not None:
            found.append(statement)
    return found


def _statement(payload: object) -> Statement | None:
    if not isinstance(payload, dict) or payload.get("_type") not in STATEMENT_TYPES:
        return None
    predicate_type, predicate, subject = payload.get("predicateType"), payload.get("predicate"), payload.get("subject")
    if not isinstance(predicate_type, str) or not isinstance(predicate, dict) or not isinstance(subject, list):
        return None
    digests = []
    for entry in subject:
        sha = (entry.get("digest") or {}).get("sha256") if isinstance(entry, dict) and isinstance(entry.get("digest"), dict) else None
        if isinstance(sha, str) and _SHA256.fullmatch(sha):
            digests.append(f"sha256:{sha}")
    return Statement(predicate_type, tuple(digests), predicate)


@dataclass(frozen=True)
class SmokeEvidence:
    """What our smoke-test predicate says, held to its shape."""

    image_id: str
    content_id: str
    result: str  # passed | failed | error
    passed: int
    failed: int
    skipped: int
    runner_class: str
    gpus: tuple[str, ...]
    driver: str
    engine: str
    recorded: str
    junit_sha256: str

    @property
    def ok(self) -> bool:
        return self.result == "passed" and self.failed == 0 and self.passed > 0

    def describe(self) -> str:
        gpus = f"{len(self.gpus)}× {self.gpus[0]}" if self.gpus else "no GPU"
        driver = f", driver {self.driver}" if self.driver else ""
        return (f"{self.result} on {self.runner_class} ({gpus}{driver}; {self.engine}) at {self.recorded}: "
                f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped; JUnit sha256 {self.junit_sha256[:12]}")  # fmt: skip


def smoke_predicate(
    *,
    image_id: str,
    content_id: str,
    digest: str,
    result: str,
    counts: tuple[int, int, int],
    runner: dict[str, Any],
    seconds: float,
    recorded: str,
    junit: bytes,
    properties: dict[str, str],
) -> dict[str, Any]:
    """The predicate of a smoke-test attestation: the verdict for one content on one runner class,
    the JUnit report's digest (the report itself stays in the run's artifacts, or the registry's
    test result), and the suite's own figures (torch, GPUs, timings: `timing.*` properties)."""
    passed, failed, skipped = counts
    return {
        "image": {"id": image_id, "contentId": content_id, "digest": digest},
        "result": result,
        "counts": {"passed": passed, "failed": failed, "skipped": skipped},
        "runnerClass": runner,
        "seconds": round(seconds, 1),
        "recorded": recorded,
        "junitReport": {"sha256": hashlib.sha256(junit).hexdigest(), "size": len(junit)},
        "properties": {k: text(v, 200) for k, v in sorted(properties.items())[:200]},
    }


def smoke_evidence(statement: Statement) -> SmokeEvidence | None:
    """Our predicate read back, or None when it is not one (then it proves nothing)."""
    p = statement.predicate
    image, counts, runner, junit = p.get("image"), p.get("counts"), p.get("runnerClass"), p.get("junitReport")
    if not all(isinstance(x, dict) for x in (image, counts, runner, junit)):
        return None
    assert isinstance(image, dict) and isinstance(counts, dict) and isinstance(runner, dict) and isinstance(junit, dict)
    numbers = [counts.get(k) for k in ("passed", "failed", "skipped")]
    if not all(type(n) is int and n >= 0 for n in numbers):
        return None
    content, result, sha = image.get("contentId"), p.get("result"), junit.get("sha256")
    if not (isinstance(content, str) and grammar.full(grammar.HEX64, content)):
        return None
    if not (isinstance(result, str) and _RESULT.fullmatch(result) and isinstance(sha, str) and _SHA256.fullmatch(sha)):
        return None
    gpus = runner.get("gpus")
    return SmokeEvidence(
        image_id=text(image.get("id") or "", 128),
        content_id=content,
        result=result,
        passed=int(numbers[0]),  # type: ignore[arg-type]
        failed=int(numbers[1]),  # type: ignore[arg-type]
        skipped=int(numbers[2]),  # type: ignore[arg-type]
        runner_class=text(runner.get("name") or "", 40),
        gpus=tuple(text(g, 80) for g in gpus[:64] if isinstance(g, str)) if isinstance(gpus, list) else (),
        driver=text(runner.get("driver") or "", 40),
        engine=text(runner.get("engine") or "", 120),
        recorded=text(p.get("recorded") or "", 40),
        junit_sha256=sha,
    )
