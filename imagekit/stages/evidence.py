"""Staged images tested by digest on a runner class, the result attached to that digest in the
registry (README "Staging, runner classes and promotion"), and a class that already passed a digest
not run again unless asked.

The image comes from the registry by digest, not from a local build: a test runner needs the
checkout (matrix, smoke suite, extension tests) and staged.json, never the build context or the base.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from imagekit import console
from imagekit.adapters.registry import RawManifest, split_reference
from imagekit.core import evidence as ev
from imagekit.core.attestation import SMOKE_PREDICATE
from imagekit.core.evidence import RunnerClass, StagedImage, SuiteResult
from imagekit.errors import ImagekitError
from imagekit.outcomes import Tested
from imagekit.reports import CONTENT_ID_PROPERTY, Case, ReportsDir, Suite, stamp_suites, summarise, write_suites
from imagekit.stages.ports import ContainerEngine, RegistryClient, Signer
from imagekit.stages.signing import check, staged_smoke
from imagekit.stages.test import SmokeOptions, SmokeOutcome, _failed_report, run_suite

CONTENT_LABEL = "io.imagekit.content-id"


@dataclass
class Evidence:
    """Test results of one runner class, read from and written to the registries staged images live in."""

    registries: Callable[[str], RegistryClient]  # host → its client (one per host, made once)
    runner: RunnerClass

    def _where(self, staged: StagedImage) -> tuple[RegistryClient, str]:
        host, path = split_reference(staged.name)
        return self.registries(host), path

    def recorded(self, staged: StagedImage, runner_class: str | None = None) -> tuple[SuiteResult, RawManifest] | None:
        """The latest result ``runner_class`` (default: this runner's) recorded for ``staged``'s
        digest, with the artifact manifest that holds it; None when there is none, or it is not
        about this digest and class."""
        registry, path = self._where(staged)
        name = runner_class or self.runner.name
        raw = registry.raw_manifest(path, ev.result_tag(staged.digest, name))
        if raw is None:
            return None
        blobs = ev.artifact_blobs(raw.json())
        if ev.RESULT_TYPE not in blobs:
            return None
        result = ev.read_result(registry.blob(path, blobs[ev.RESULT_TYPE]))
        if result is None or result.digest != staged.digest or result.content_id != staged.content_id or result.runner_class.name != name:
            return None
        return result, raw

    def record(self, staged: StagedImage, result: SuiteResult, junit: bytes) -> str:
        """Attach ``result`` and its JUnit report to the staged digest: an artifact manifest whose
        subject is the image manifest, tagged by the tag schema. Returns its reference."""
        registry, path = self._where(staged)
        image = registry.raw_manifest(path, staged.digest)
        if image is None:
            raise ImagekitError(f"{staged.reference} is no longer in the registry: nothing to attach the result to")
        registry.put_blob(path, ev.EMPTY)
        body = result.to_json()
        blobs = [
            ev.descriptor(ev.RESULT_TYPE, registry.put_blob(path, body), len(body)),
            ev.descriptor(ev.JUNIT_TYPE, registry.put_blob(path, junit), len(junit)),
        ]
        annotations = {
            "org.opencontainers.image.created": result.recorded,
            "io.imagekit.image-id": result.image_id,
            "io.imagekit.runner-class": result.runner_class.name,
            "io.imagekit.result": result.state,
        }
        manifest = ev.artifact_manifest(ev.descriptor(image.media_type, image.digest, len(image.body)), blobs, annotations)
        tag = ev.result_tag(staged.digest, result.runner_class.name)
        digest = registry.put_manifest(path, tag, RawManifest.of(ev.OCI_MANIFEST, manifest))
        return f"{staged.name}:{tag}@{digest}"


@dataclass
class StagedRun:
    """What testing staged digests on one runner needs, for each image alike."""

    engine: ContainerEngine
    auth: Callable[[str], dict[str, str] | None]  # registry host → the credentials a pull sends
    evidence: Evidence
    options: SmokeOptions
    smoke_dir: Path
    reports: ReportsDir
    extension_tests: dict[str, Path]
    rerun: bool
    signer: Signer | None = None  # IMAGEKIT_SIGNING_KEY set: each result also goes as a signed smoke-test attestation


def smoke_staged(image_ids: list[str], staged: dict[str, StagedImage], run: StagedRun) -> list[SmokeOutcome]:
    board = console.StatusBoard(image_ids)
    outcomes = []
    with board.shown():
        for image_id in image_ids:
            board.set(image_id, "testing", f"staged, class {run.evidence.runner.name}")
            try:
                outcome = _one(image_id, staged.get(image_id), run)
            except ImagekitError as exc:
                report = run.reports.test_junit(image_id)
                _failed_report(report, image_id, "error", exc.message, exc.message)
                outcome = SmokeOutcome(image_id, Tested.ERROR, 0.0, report, exc.message)
            board.set(image_id, outcome.state, outcome.message, final=True)
            outcomes.append(outcome)
    return outcomes


def _one(image_id: str, staged: StagedImage | None, run: StagedRun) -> SmokeOutcome:
    engine, evidence, reports = run.engine, run.evidence, run.reports
    report = reports.test_junit(image_id)
    if staged is None:
        message = "not in the staged record: run `imagekit stage` for it on the build host, and hand its staged.json to this job"
        _failed_report(report, image_id, "error", message, message)
        return SmokeOutcome(image_id, Tested.NOT_STAGED, 0.0, report, message)
    # With signing on, only a signed pass counts as passed before: a result recorded without the key
    # (a pull request's run, say) is run again here, so this class's pass gets its attestation.
    if not run.rerun and (previous := evidence.recorded(staged)) is not None and previous[0].ok and _signed_pass(run, staged):
        result = previous[0]
        message = (f"{evidence.runner.name} passed {staged.digest[:19]} at {result.recorded} ({result.passed} passed, "
                   f"{result.skipped} skipped); not run again (--rerun runs it)")  # fmt: skip
        # A report of our own from the checked record (the registry's JUnit stays there, as evidence):
        # the merged report and the summary say what passed, from nothing the registry wrote.
        write_suites(
            report, [Suite(image_id, [Case(name="smoke suite (passed before)", classname=image_id, outcome="passed", message=message)])]
        )
        stamp_suites(
            report,
            {CONTENT_ID_PROPERTY: staged.content_id, "imagekit.reference": staged.reference, "imagekit.runner-class": evidence.runner.name},
        )
        return SmokeOutcome(image_id, Tested.PASSED_BEFORE, 0.0, report, message)
    host, _ = split_reference(staged.name)
    attrs = engine.pull(staged.reference, run.auth(host))
    label = ((attrs.get("Config") or {}).get("Labels") or {}).get(CONTENT_LABEL)
    if label != staged.content_id:
        shown = "".join(c if c.isalnum() else "?" for c in str(label)[:12])
        message = f"{staged.reference} carries content id {shown}, not the staged {staged.content_id[:12]}: the staged record does not describe this image"
        _failed_report(report, image_id, "error", message, message)
        return SmokeOutcome(image_id, Tested.ERROR, 0.0, report, message)
    started = datetime.now(timezone.utc)
    stamp = {"imagekit.reference": staged.reference, "imagekit.runner-class": evidence.runner.name}
    outcome = run_suite(
        image_id, staged.reference, staged.content_id, engine, run.options, run.smoke_dir, reports, run.extension_tests.get(image_id), stamp
    )
    counts = summarise(outcome.report)
    timings = reports.artifacts(image_id) / "timings.json"
    result = SuiteResult(
        image_id=image_id,
        content_id=staged.content_id,
        digest=staged.digest,
        runner_class=evidence.runner,
        state="passed" if outcome.state.ok else "failed" if outcome.state is Tested.FAILED else "error",
        passed=counts.passed,
        failed=counts.failed,
        skipped=counts.skipped,
        seconds=round(outcome.seconds, 1),
        recorded=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        timings=_timings(timings),
    )
    t = time.monotonic()
    try:
        where = evidence.record(staged, result, outcome.report.read_bytes())
    except ImagekitError as exc:
        return SmokeOutcome(
            image_id, Tested.ERROR, outcome.seconds, outcome.report, f"{outcome.state}, but the result was not recorded: {exc.message}"
        )
    console.info(f"{image_id}: {result.state} on {evidence.runner.describe()}, recorded as {where} ({time.monotonic() - t:.1f}s)")
    if run.signer is not None:
        try:
            run.signer.attest(
                staged.reference, SMOKE_PREDICATE, staged_smoke(result, outcome.report.read_bytes(), summarise(outcome.report).properties)
            )
        except ImagekitError as exc:
            return SmokeOutcome(
                image_id, Tested.ERROR, outcome.seconds, outcome.report, f"{outcome.state}, but not attested: {exc.message}"
            )
        console.info(f"{image_id}: the result is signed and attached to {staged.reference}")
    return outcome


def _signed_pass(run: StagedRun, staged: StagedImage) -> bool:
    if run.signer is None:
        return True
    found = check(run.signer, staged.reference, staged.content_id, (run.evidence.runner.name,))
    return not any(p.startswith("tests") for p in found.problems)


def _timings(path: Path) -> dict[str, object]:
    if not path.is_file() or path.stat().st_size > 2**20:
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
