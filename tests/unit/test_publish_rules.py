"""Publishing rules that are pure logic: the test gate and the retry policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagekit.core.identity import Identity
from imagekit.core.matrix import load_matrix
from imagekit.core.render import Renderer
from imagekit.errors import MatrixError, RegistryError
from imagekit.reports import Case, Suite, stamp_suites, write_suites
from imagekit.stages.publish import Retry, gate

ROOT = Path(__file__).resolve().parent.parent.parent
MATRIX = load_matrix([ROOT / "tests" / "matrices" / "product-like.yaml"])
IDENT = Identity(Renderer(MATRIX).render(MATRIX.images[2]), "sha256:" + "b" * 64, "c" * 64)


def report(tmp_path: Path, content_id: str, outcome: str = "passed") -> Path:
    path = tmp_path / "r.xml"
    write_suites(path, [Suite("img", [Case("test_a", "t"), Case("test_b", "t", outcome=outcome, message="boom")])])
    stamp_suites(path, {"imagekit.content-id": content_id})
    return path


def test_a_passing_report_for_this_content_opens_the_gate(tmp_path):
    assert gate(IDENT, report(tmp_path, "c" * 64)) is None
    assert gate(IDENT, report(tmp_path, "c" * 64, outcome="skipped")) is None


def test_missing_stale_or_failed_reports_keep_it_shut(tmp_path):
    assert "no smoke report" in gate(IDENT, tmp_path / "absent.xml")
    assert "is for content dddddddddddd, not cccccccccccc" in gate(IDENT, report(tmp_path, "d" * 64))
    assert "1 failed test(s): test_b" in gate(IDENT, report(tmp_path, "c" * 64, outcome="failed"))
    assert "1 failed test(s)" in gate(IDENT, report(tmp_path, "c" * 64, outcome="error"))


def test_retry_repeats_transient_errors_then_succeeds():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RegistryError("503", transient=True)
        return "ok"

    assert Retry(attempts=4, backoff_s=0).run("push", flaky) == "ok"
    assert len(calls) == 3


def test_retry_gives_up_at_once_on_denial_and_says_so_after_the_last_attempt():
    calls = []

    def denied():
        calls.append(1)
        raise RegistryError("unauthorized", transient=False)

    with pytest.raises(RegistryError, match=r"unauthorized \(attempt 1 of 4\)"):
        Retry(attempts=4, backoff_s=0).run("push", denied)
    assert len(calls) == 1
    with pytest.raises(RegistryError, match=r"503 \(attempt 2 of 2\)"):
        Retry(attempts=2, backoff_s=0).run("push", lambda: (_ for _ in ()).throw(RegistryError("503", transient=True)))


def test_registry_must_name_a_host(tmp_path):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("registry: ml/pytorch\n")
    with pytest.raises(MatrixError, match="registry: 'ml/pytorch' is not a registry reference"):
        load_matrix([ROOT / "tests" / "matrices" / "product-like.yaml", overlay])
