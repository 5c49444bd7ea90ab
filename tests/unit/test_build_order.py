"""The build order: an extension starts only once its parent is done; others run at once."""

from __future__ import annotations

from pathlib import Path

from imagekit.core.matrix import load_matrix
from imagekit.core.render import Rendered
from imagekit.stages.build import _schedule

M = Path(__file__).resolve().parent.parent / "matrices"


def test_extensions_wait_for_their_parent_and_nothing_else():
    matrix = load_matrix([M / "good.yaml", M / "extensions.yaml"])
    rendered = [Rendered(image=i, context={}) for i in matrix.images]
    done: dict[str, object] = {}
    batches = _schedule(rendered, done)
    first = [r.image.id for r in next(batches)]
    assert first == [i.id for i in matrix.images if i.parent is None]
    done["2.6.0-cu121-py3.11-devel"] = "built"
    assert [r.image.id for r in next(batches)] == ["2.6.0-cu121-py3.11-devel-jupyter"]
    assert next(batches) == []  # both runtime parents still running
    done |= {"2.6.0-cu118-py3.11-runtime": "built", "2.6.0-cu121-py3.11-runtime": "failed"}
    assert [r.image.id for r in next(batches)] == ["2.6.0-cu118-py3.11-runtime-tracking", "2.6.0-cu121-py3.11-runtime-tracking"]
    assert next(batches, None) is None


def test_an_extension_whose_parent_is_not_in_the_run_starts_at_once():
    matrix = load_matrix([M / "good.yaml", M / "extensions.yaml"])
    rendered = [Rendered(image=matrix.image("2.6.0-cu121-py3.11-devel-jupyter"), context={})]
    assert [[r.image.id for r in batch] for batch in _schedule(rendered, {})] == [["2.6.0-cu121-py3.11-devel-jupyter"]]
