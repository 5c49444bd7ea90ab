"""apt package sets → exact versions, as apt itself would install them: `apt-get install
--simulate` in a throwaway container of the locked base image, so the lock pins the whole closure
(dependencies included), each as name=version. The only module that asks apt."""

from __future__ import annotations

import re
import shlex

from imagekit.adapters.docker_engine import Engine
from imagekit.errors import EngineError, ImagekitError

_INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) ", re.MULTILINE)
_SECTION = re.compile(r"^== (\w+)$", re.MULTILINE)


class AptResolutionError(ImagekitError):
    """apt could not resolve a package set in the base (no such package, unreachable mirror)."""


def _script(python: str, stages: dict[str, list[str]], installed: list[str]) -> str:
    """One shell run: refresh the package lists, then simulate each stage on top of the ones
    before it (and of ``installed``, an extension's parent set), printing apt's plan per stage."""
    lines = [
        "set -u",
        "apt-get update -qq >/dev/null 2>&1 || { echo '== failed'; echo 'apt-get update failed: check the sources and the mirror'; exit 0; }",
        f"before={shlex.quote(' '.join(installed))}",
    ]
    for stage, packages in stages.items():
        if not packages:
            continue
        # Names and pins are validated (matrix.py: _APT), so they go into the shell as words, unquoted.
        names = " ".join(packages)
        simulate = f'echo "== {stage}"; apt-get install --simulate --no-install-recommends $before {names} 2>&1; before="$before {names}"'
        if stage == "system":
            have = f'command -v python{python} >/dev/null && python{python} -c "import venv, ensurepip" 2>/dev/null'
            simulate = f"if ! {{ {have}; }}; then {simulate}; fi"
        lines.append(simulate)
    return "\n".join(lines)


def resolve_apt(
    engine: Engine, base: str, python: str, stages: dict[str, list[str]], installed: list[str] | None = None
) -> dict[str, list[str]]:
    """Stage → name=version for everything the stage installs on ``base``, beyond the stages before
    it and ``installed``. Empty stages stay out; a base that has the Python yields no `system` pins."""
    if not any(stages.values()):
        return {}
    try:
        result = engine.run_container(
            base, ["sh", "-c", _script(python, stages, installed or [])], volumes={}, environment={}, gpus=None, timeout=600, user="0"
        )
    except EngineError as exc:
        raise AptResolutionError(f"cannot run apt in {base}: {exc.message}") from None
    if result.timed_out:
        raise AptResolutionError(f"apt in {base} took over 10 minutes", tip="check that the base's package mirror answers")
    parts = _SECTION.split(result.logs)
    plans = dict(zip(parts[1::2], parts[2::2], strict=True))
    if "failed" in plans:
        raise AptResolutionError(
            f"in {base}: {plans['failed'].strip()}", tip="lock this image where the base's package mirror is reachable"
        )
    pinned: dict[str, list[str]] = {}
    seen = {p.split("=", 1)[0] for p in installed or []}
    for stage, plan in plans.items():
        errors = [line for line in plan.splitlines() if line.startswith(("E: ", "Package ")) or "has no installation candidate" in line]
        if errors:
            raise AptResolutionError(
                f"apt cannot install the {stage} packages {', '.join(stages[stage])} on {base}: {' '.join(errors)[:600]}"
            )
        found = [f"{name}={version}" for name, version in _INST.findall(plan) if name not in seen]
        seen |= {pin.split("=", 1)[0] for pin in found}
        if found:
            pinned[stage] = sorted(found)
    return pinned
