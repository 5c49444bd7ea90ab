"""Every line a user sees comes through here: messages and live progress on stderr, results
(tables, JSON) on stdout so they can be piped."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; image ids need more.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 200)


def info(message: str) -> None:
    err.print(escape(message))


def warn(message: str) -> None:
    err.print(f"[yellow]WARNING[/] {escape(message)}")


def error(message: str, tip: str | None = None) -> None:
    err.print(f"[bold red]ERROR[/] {escape(message)}")
    if tip:
        err.print(f"[cyan]TIP[/] {escape(tip)}")


def result(line: str) -> None:
    """A line of a command's result, on stdout."""
    out.print(escape(line))


def print_json(data: Any, *, compact: bool = False) -> None:
    """JSON on stdout; ``compact``: one line, as a workflow's $GITHUB_OUTPUT takes it."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":")) if compact else json.dumps(data, indent=2, sort_keys=True)
    sys.stdout.write(text + "\n")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*(escape(str(cell)) for cell in row))
    out.print(t)


class StatusBoard:
    """Per-image live status. On a terminal, a table redrawn in place; elsewhere (CI logs), one
    line per state change, never per log line."""

    def __init__(self, ids: Sequence[str]) -> None:
        self._lock = threading.Lock()
        # image id → [state, detail, started (left the queue), ended (reached a final state)]
        self._rows: dict[str, list[Any]] = {i: ["queued", "", None, None] for i in ids}
        self._live: Live | None = None

    def _render(self) -> Table:
        t = Table(show_edge=False, pad_edge=False)
        for column in ("image", "state", "time", "detail"):
            t.add_column(column, no_wrap=True, overflow="ellipsis", max_width=None if column != "detail" else 70)
        now = time.monotonic()
        for image_id, (state, detail, started, ended) in self._rows.items():
            elapsed = "" if started is None else f"{(ended or now) - started:5.0f}s"
            t.add_row(image_id, state, elapsed, escape(detail))
        return t

    def set(self, image_id: str, state: str, detail: str = "", *, final: bool = False) -> None:
        with self._lock:
            row = self._rows[image_id]
            changed = row[0] != state
            now = time.monotonic()
            row[2] = row[2] or now
            row[3] = now if final else None
            row[0], row[1] = state, detail
            if self._live is not None:
                self._live.update(self._render())
            elif changed:
                info(f"[{image_id}] {state}{': ' + detail if detail else ''}")

    @contextmanager
    def shown(self) -> Iterator[StatusBoard]:
        if err.is_terminal:
            with Live(self._render(), console=err, refresh_per_second=4, transient=False) as live:
                self._live = live
                try:
                    yield self
                finally:
                    live.update(self._render())
                    self._live = None
        else:
            yield self
