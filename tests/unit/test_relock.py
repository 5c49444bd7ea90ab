"""Relocking against fakes handed to the stage: what is kept, resolved and failed, with no engine,
index or process."""

from __future__ import annotations

from pathlib import Path

from imagekit.core.lock import Lock
from imagekit.core.matrix import load_matrix
from imagekit.errors import ImagekitError
from imagekit.outcomes import Relocked
from imagekit.stages.relock import Resolvers, relock

M = Path(__file__).resolve().parent.parent / "matrices"
PINS = "torch==2.6.0 \\\n    --hash=sha256:" + "b" * 64 + "\n"


class FakeEngine:
    def resolve(self, ref: str, *, pull: bool) -> str:
        return f"{ref.split(':')[0]}@sha256:{'a' * 64}"


def test_relock_resolves_then_keeps_and_one_failure_blocks_only_its_own_extension(tmp_path):
    matrix = load_matrix([M / "product-like.yaml"])
    asked: list[str] = []
    preferred: list[str | None] = []

    def pip(requirements: list[str], *, python: str, index_url: str, constraints: list[str] | None = None, preferences=None) -> str:
        asked.append(index_url)
        preferred.append(preferences)
        if "cu118" in index_url:
            raise ImagekitError("the index is unreachable")
        return PINS

    fakes = Resolvers(pip=pip, apt=lambda *args, **kwargs: {"system": ["python3.11=3.11.2-6"]})
    lock = Lock(tmp_path / "x.lock")
    done = relock(lock, matrix.images, matrix, FakeEngine(), resolvers=fakes)  # type: ignore[arg-type]
    states = {image_id: outcome.state for image_id, outcome in done.items()}
    assert states == {
        "2.6.0-cu118-py3.11-runtime": Relocked.FAILED,
        "2.6.0-cu118-py3.11-devel": Relocked.FAILED,
        "2.6.0-cu121-py3.11-runtime": Relocked.RESOLVED,
        "2.6.0-cu121-py3.11-devel": Relocked.RESOLVED,
        "2.6.0-cu118-py3.11-runtime-tracking": Relocked.FAILED,
        "2.6.0-cu121-py3.11-runtime-tracking": Relocked.RESOLVED,
    }
    assert "its parent 2.6.0-cu118-py3.11-runtime is not locked" in done["2.6.0-cu118-py3.11-runtime-tracking"].message
    assert done["2.6.0-cu118-py3.11-runtime"].message == "the index is unreachable"
    assert not any(o.state.ok for o in done.values() if o.state is Relocked.FAILED)

    asked.clear()
    again = relock(lock, matrix.select(["*cu121*"]), matrix, FakeEngine(), resolvers=fakes)  # type: ignore[arg-type]
    assert {o.state for o in again.values()} == {Relocked.KEPT} and asked == [], "a current entry is kept, not re-resolved"
    upgraded = relock(lock, matrix.select(["*cu121*"]), matrix, FakeEngine(), upgrade=True, resolvers=fakes)  # type: ignore[arg-type]
    assert {o.state for o in upgraded.values()} == {Relocked.RESOLVED} and len(asked) == 3
    assert set(preferred[-3:]) == {None}, "--upgrade resolves afresh, preferring nothing"


def test_a_changed_package_list_is_resolved_again_keeping_the_other_pins(tmp_path):
    matrix = load_matrix([M / "product-like.yaml"])
    preferred: list[str | None] = []

    def pip(requirements: list[str], *, python: str, index_url: str, constraints=None, preferences=None) -> str:
        preferred.append(preferences)
        return PINS

    fakes = Resolvers(pip=pip, apt=lambda *args, **kwargs: {})
    lock = Lock(tmp_path / "x.lock")
    relock(lock, matrix.select(["*cu121*runtime"]), matrix, FakeEngine(), resolvers=fakes)  # type: ignore[arg-type]
    assert preferred == [None], "nothing locked yet: nothing to prefer"
    bumped = load_matrix([M / "product-like.yaml", M / "bump-pytest.yaml"])
    done = relock(lock, bumped.select(["*cu121*runtime"]), bumped, FakeEngine(), resolvers=fakes)  # type: ignore[arg-type]
    assert done["2.6.0-cu121-py3.11-runtime"].state is Relocked.RESOLVED
    assert preferred[-1] == PINS, "uv is handed the set locked before, whose pins it keeps where the change allows"
