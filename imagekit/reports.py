"""The reports folder (`ReportsDir`: the one owner of every path in it), JUnit reports (per image,
for builds, merged) and the Markdown summary.

The reports follow the Jenkins xUnit junit-10.xsd that CI viewers read: a <testsuites> root with
<testsuite> children; suite-level <properties> only (testcase-level properties are not in it).
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from imagekit.files import write_atomic
from imagekit.outcomes import Built

BUILD_SUITE = "imagekit.build"
CONTENT_ID_PROPERTY = "imagekit.content-id"
LOG_TAIL_LINES = 60
SUITE_REPORT = "junit.xml"  # its name inside the artifacts folder, as the suite writes it
HOST = "host"  # the name `imagekit smoke`'s run goes by, where an image id goes otherwise


@dataclass(frozen=True)
class ReportsDir:
    """Everything a run leaves for people and for later commands, under one folder:

        junit/build.xml  junit/<image>.xml (the smoke run; publish's gate reads it)  junit.xml (merged)
        artifacts/<image>/ (what the suite writes: its raw junit.xml, timings)
        logs/build-<image>.log  logs/size-<image>.log  logs/test-<image>.log  logs/verify-<image>.log
        manifests/<image>.json  artifacts/<image>/  verify-<image>.json  summary.md  published.json  staged.json

    Nothing else builds a path in it, so a writer and its reader cannot drift apart."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, step: Literal["build", "size", "test", "verify"], image_id: str) -> Path:
        return self.logs / f"{step}-{image_id}.log"

    @property
    def build_junit(self) -> Path:
        return self.root / "junit" / "build.xml"

    def test_junit(self, image_id: str) -> Path:
        return self.root / "junit" / f"{image_id}.xml"

    @property
    def merged_junit(self) -> Path:
        return self.root / "junit.xml"

    def manifest(self, image_id: str) -> Path:
        return self.root / "manifests" / f"{image_id}.json"

    def artifacts(self, image_id: str) -> Path:
        return self.root / "artifacts" / image_id

    def suite_report(self, image_id: str) -> Path:
        """Where the smoke suite's own pytest writes its JUnit, before it is stamped and moved to
        `test_junit`: in the artifacts folder, the one folder the image may write to."""
        return self.artifacts(image_id) / SUITE_REPORT

    def verify_record(self, image_id: str) -> Path:
        return self.root / f"verify-{image_id}.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.md"

    @property
    def published(self) -> Path:
        return self.root / "published.json"

    @property
    def staged(self) -> Path:
        """What `imagekit stage` pushed (core/evidence.StagedImage): the record test and promote jobs read."""
        return self.root / "staged.json"


CaseOutcome = Literal["passed", "failed", "error", "skipped"]


@dataclass
class Case:
    name: str
    classname: str
    time: float = 0.0
    outcome: CaseOutcome = "passed"
    message: str = ""
    text: str = ""


@dataclass
class Suite:
    name: str
    cases: list[Case] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)

    def element(self) -> ET.Element:
        counts = {k: sum(c.outcome == k for c in self.cases) for k in ("failed", "error", "skipped")}
        el = ET.Element(
            "testsuite",
            name=self.name,
            tests=str(len(self.cases)),
            failures=str(counts["failed"]),
            errors=str(counts["error"]),
            skipped=str(counts["skipped"]),
            time=f"{sum(c.time for c in self.cases):.3f}",
            timestamp=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            hostname=socket.gethostname(),
        )
        if self.properties:
            props = ET.SubElement(el, "properties")
            for key, value in self.properties.items():
                ET.SubElement(props, "property", name=key, value=value)
        for case in self.cases:
            c = ET.SubElement(el, "testcase", name=case.name, classname=case.classname, time=f"{case.time:.3f}")
            if case.outcome != "passed":
                tag = {"failed": "failure", "error": "error", "skipped": "skipped"}[case.outcome]
                child = ET.SubElement(c, tag, message=case.message)
                if tag != "skipped":
                    child.set("type", tag)
                child.text = case.text or None
        return el


def _document(suites: list[ET.Element], name: str) -> str:
    root = ET.Element("testsuites", name=name)
    totals = {"tests": 0, "failures": 0, "errors": 0}
    time_total = 0.0
    for suite in suites:
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        time_total += float(suite.get("time", "0") or 0)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{time_total:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_suites(path: Path, suites: list[Suite], name: str = "imagekit") -> None:
    write_atomic(path, _document([s.element() for s in suites], name))


def read_suites(path: Path) -> list[ET.Element]:
    """The suites of a JUnit report; none when it is missing or not XML (another run may have
    cleared reports/ meanwhile): a summary then shows no counts rather than stopping the run."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - reports this tool or pytest wrote
    except (OSError, ET.ParseError):
        return []
    return [root] if root.tag == "testsuite" else list(root.iter("testsuite"))


def stamp_suites(path: Path, properties: dict[str, str] | None) -> None:
    """Add suite-level properties to every <testsuite> of a report, in place."""
    if not properties:
        return
    tree = ET.parse(path)  # noqa: S314 - a report pytest just wrote
    for suite in tree.getroot().iter("testsuite"):
        props = suite.find("properties")
        if props is None:
            props = ET.Element("properties")
            suite.insert(0, props)
        for name, value in properties.items():
            ET.SubElement(props, "property", name=name, value=value)
    write_atomic(path, '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(tree.getroot(), encoding="unicode") + "\n")


def merge(paths: list[Path], target: Path) -> None:
    """One report of every suite in ``paths``, in order (build first, then images)."""
    suites = [suite for path in paths for suite in read_suites(path)]
    write_atomic(target, _document(suites, "imagekit"))


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True)
class SuiteSummary:
    name: str
    tests: int
    failed: int
    skipped: int
    time: float
    properties: dict[str, str]
    slowest: list[tuple[str, float]]

    @property
    def passed(self) -> int:
        return self.tests - self.failed - self.skipped


def summarise(path: Path) -> SuiteSummary:
    suites = read_suites(path)
    cases = [c for s in suites for c in s.iter("testcase")]
    props = {p.get("name", ""): p.get("value", "") for s in suites for p in s.iter("property")}
    failed = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    slowest = sorted(((c.get("name", ""), float(c.get("time", "0") or 0)) for c in cases), key=lambda x: -x[1])[:3]
    return SuiteSummary(
        name=suites[0].get("name", path.stem) if suites else path.stem,
        tests=len(cases),
        failed=failed,
        skipped=skipped,
        time=sum(float(s.get("time", "0") or 0) for s in suites),
        properties=props,
        slowest=slowest,
    )


@dataclass(frozen=True)
class SmokeVerdict:
    """What a smoke report says about the content it tested (publish's gate reads it)."""

    content_id: str | None  # CONTENT_ID_PROPERTY; None in a report that does not record it
    cases: int
    failed: tuple[str, ...]  # names of the failed or errored tests


def smoke_verdict(path: Path) -> SmokeVerdict | None:
    """The verdict of the smoke report at ``path``; None when it is not JUnit XML."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - a report imagekit wrote
    except (OSError, ET.ParseError):
        return None
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    cases = list(root.iter("testcase"))
    failed = tuple(str(c.get("name")) for c in cases if c.find("failure") is not None or c.find("error") is not None)
    return SmokeVerdict(props.get(CONTENT_ID_PROPERTY), len(cases), failed)


def build_states(path: Path) -> dict[str, Built]:
    """image id → built | unchanged | failed, from the build report (empty when there is none)."""
    states = {}
    for case in (c for suite in read_suites(path) for c in suite.iter("testcase")):
        failed, skipped = case.find("failure") is not None, case.find("skipped") is not None
        states[case.get("name", "")] = Built.FAILED if failed else Built.UNCHANGED if skipped else Built.BUILT
    return states


def summary_markdown(rows: list[tuple[str, str, SuiteSummary | None, str]]) -> str:
    """rows: (image id, build state, test summary or None, test state)."""
    lines = [
        "## imagekit smoke tests",
        "",
        "| image | build | tests | passed | failed | skipped | time | key timings |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for image_id, build_state, s, state in rows:
        if s is None:
            lines.append(f"| `{image_id}` | {build_state} | {state} | – | – | – | – | – |")
            continue
        timings = [f"{k.removeprefix('timing.')}={v}" for k, v in s.properties.items() if k.startswith("timing.")]
        timings = timings or [f"{n} {t:.2f}s" for n, t in s.slowest]
        lines.append(
            f"| `{image_id}` | {build_state} | {state} | {s.passed} | {s.failed} | {s.skipped} | {s.time:.1f}s | {'; '.join(timings)} |"
        )
    return "\n".join(lines) + "\n"
