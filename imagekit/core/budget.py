"""Built images → their size against the matrix's `size_budgets`: an image over its budget fails
its build, with the largest layers and packages named so the fix can start at the right place."""

from __future__ import annotations

from imagekit.core.layers import step_text
from imagekit.core.manifest import PackageManifest, human
from imagekit.core.matrix import SizeBudget

SHOWN = 8  # how many layers and packages an over-budget message lists


def over_budget(size: int, budget: SizeBudget, layers: list[tuple[int, str]], manifest: PackageManifest | str) -> list[str]:
    """Nothing when an image of ``size`` bytes is within ``budget``; else the lines that say by
    how much, and what is biggest in it: its ``layers`` (size, instruction) and the packages of its
    ``manifest`` (or why it has none)."""
    if size <= budget.limit:
        return []
    lines = [f"{human(size)} is over its size budget of {human(budget.limit)} by {human(size - budget.limit)} (budget: {budget.where})"]
    lines.append("largest layers:")
    for layer_size, created_by in sorted(layers, key=lambda h: -h[0])[:SHOWN]:
        lines.append(f"  {human(layer_size):>10}  {step_text(created_by, 140)}")
    if isinstance(manifest, str):
        lines.append(f"largest packages: unknown ({manifest})")
    else:
        lines.append("largest packages:")
        lines += [f"  {human(p.size):>10}  {p.kind} {p.name} {p.version}" for p in manifest.largest(SHOWN)]
    return lines
