"""JUnit reports validate against the schema CI viewers read; merging and summaries count right."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import xmllint_schema

from imagekit.reports import Case, Suite, build_states, merge, stamp_suites, summarise, summary_markdown, write_suites

PYTEST_STYLE = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="img-a" errors="0" failures="1" skipped="1" tests="3" time="2.5"
 timestamp="2026-11-24T00:00:00" hostname="h"><properties><property name="timing.forward_ms" value="1.2"/></properties>
<testcase classname="test_x" name="test_ok" time="2.0"/>
<testcase classname="test_x" name="test_bad" time="0.4"><failure message="boom">trace</failure></testcase>
<testcase classname="test_x" name="test_gpu" time="0.1"><skipped type="pytest.skip" message="no GPU visible: run with --gpus all">s</skipped></testcase>
</testsuite></testsuites>
"""


@pytest.mark.tool("xmllint")  # helpers.xmllint_schema
def test_build_report_records_built_unchanged_and_failed(tmp_path: Path):
    path = tmp_path / "build.xml"
    write_suites(
        path,
        [
            Suite(
                "imagekit.build",
                [
                    Case("a", "imagekit.build", 12.0),
                    Case("b", "imagekit.build", 0.1, "skipped", "unchanged: repo:b-123 already exists"),
                    Case("c", "imagekit.build", 3.0, "failed", "docker build exited 1", "#5 ERROR: process did not complete"),
                ],
            )
        ],
    )
    xmllint_schema(path)
    assert build_states(path) == {"a": "built", "b": "unchanged", "c": "failed"}
    text = path.read_text()
    assert "#5 ERROR: process did not complete" in text


@pytest.mark.tool("xmllint")  # helpers.xmllint_schema
def test_merge_keeps_every_suite_and_totals(tmp_path: Path):
    (tmp_path / "img-a.xml").write_text(PYTEST_STYLE)
    write_suites(tmp_path / "build.xml", [Suite("imagekit.build", [Case("img-a", "imagekit.build", 1.0)])])
    merge([tmp_path / "build.xml", tmp_path / "img-a.xml", tmp_path / "absent.xml"], tmp_path / "junit.xml")
    xmllint_schema(tmp_path / "junit.xml")
    s = summarise(tmp_path / "junit.xml")
    assert (s.tests, s.failed, s.skipped, s.passed) == (4, 1, 1, 2)
    assert s.properties == {"timing.forward_ms": "1.2"}


def test_summary_markdown_shows_counts_timings_and_unbuilt_images(tmp_path: Path):
    (tmp_path / "a.xml").write_text(PYTEST_STYLE)
    md = summary_markdown([("img-a", "built", summarise(tmp_path / "a.xml"), "failed"), ("img-b", "failed", None, "not built")])
    assert "| `img-a` | built | failed | 1 | 1 | 1 | 2.5s | forward_ms=1.2 |" in md
    assert "| `img-b` | failed | not built |" in md


@pytest.mark.tool("xmllint")  # helpers.xmllint_schema
def test_stamped_properties_join_the_suite_properties_and_stay_valid(tmp_path: Path):
    path = tmp_path / "img-a.xml"
    path.write_text(PYTEST_STYLE)
    stamp_suites(path, {"imagekit.content-id": "c" * 64})
    xmllint_schema(path)
    assert summarise(path).properties == {"timing.forward_ms": "1.2", "imagekit.content-id": "c" * 64}
