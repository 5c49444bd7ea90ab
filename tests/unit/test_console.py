"""Progress off a terminal (CI logs): one line per state change, never one per build-log line."""

from __future__ import annotations

from imagekit.console import StatusBoard


def test_status_board_prints_state_changes_only(capsys):
    board = StatusBoard(["img-a", "img-b"])
    with board.shown():
        board.set("img-a", "building")
        for n in range(50):
            board.set("img-a", "building", f"#5 step {n}")
        board.set("img-b", "unchanged", "repo:img-b-123", final=True)
        board.set("img-a", "failed", "docker build exited 1", final=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["[img-a] building", "[img-b] unchanged: repo:img-b-123", "[img-a] failed: docker build exited 1"]
