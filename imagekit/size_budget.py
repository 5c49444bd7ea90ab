"""Built images → their size against the matrix's `size_budgets`: an image over its budget fails
its build, with the largest layers and packages named so the fix can start at the right place."""

from __future__ import annotations

import re

from .engine import Engine
from .errors import ImagekitError
from .matrix import SizeBudget
from .package_manifest import human, read

SHOWN = 8  # how many layers and packages an over-budget message lists


def over_budget(engine: Engine, ref: str, size: int, budget: SizeBudget) -> list[str]:
    """Nothing when ``ref`` (of ``size`` bytes) is within ``budget``; else the lines that say by
    how much, and what is biggest in it."""
    if size <= budget.limit:
        return []
    lines = [f"{human(size)} is over its size budget of {human(budget.limit)} by {human(size - budget.limit)} (budget: {budget.where})"]
    lines.append("largest layers:")
    for layer_size, created_by in sorted(engine.history(ref), key=lambda h: -h[0])[:SHOWN]:
        lines.append(f"  {human(layer_size):>10}  {_instruction(created_by)}")
    try:
        packages = read(engine, ref).largest(SHOWN)
    except ImagekitError as exc:
        lines.append(f"largest packages: unknown ({exc.message})")
    else:
        lines.append("largest packages:")
        lines += [f"  {human(p.size):>10}  {p.kind} {p.name} {p.version}" for p in packages]
    return lines


_SHELLS = re.compile(r"^(RUN )?(/bin/sh -c (#\(nop\) )?|/bin/bash -o pipefail -c )")


def _instruction(created_by: str) -> str:
    """A layer's Dockerfile instruction on one short line, without the shell BuildKit records
    (`RUN /bin/bash -o pipefail -c pip …` → `RUN pip …`)."""
    text = " ".join(created_by.split())
    text = _SHELLS.sub(lambda m: m.group(1) or "", text)
    return text if len(text) <= 140 else text[:137] + "..."
