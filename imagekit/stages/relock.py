"""Bring a lock file up to date: pin bases on the engine, resolve hashed requirement sets with uv and
apt versions in the base image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from imagekit.adapters import apt_resolver, pip_resolver
from imagekit.core.lock import Lock, Locked, apt_wanted, direct_requirements, pins
from imagekit.core.matrix import ImageSpec, Matrix
from imagekit.errors import ImagekitError
from imagekit.outcomes import Relocked
from imagekit.stages.ports import ContainerEngine


@dataclass(frozen=True)
class LockOutcome:
    state: Relocked
    message: str = ""


@dataclass(frozen=True)
class Resolvers:
    """What turns wanted packages into pins: uv for pip (on the index), apt in the base (on the
    engine). A test hands in fakes."""

    pip: Callable[..., str] = pip_resolver.resolve
    apt: Callable[..., dict[str, list[str]]] = apt_resolver.resolve_apt


def relock(
    lock: Lock,
    images: list[ImageSpec],
    matrix: Matrix,
    engine: ContainerEngine,
    *,
    upgrade: bool = False,
    resolvers: Resolvers | None = None,
) -> dict[str, LockOutcome]:
    """Bring ``lock`` up to date for ``images`` (in matrix order: parents first). A current entry is
    kept as it is, like any lock tool, unless ``upgrade``: re-locking must not drift. The one
    exception is a local base (pinned by image id), made per host: its pin follows this host's.
    Returns what happened per image."""
    resolvers = resolvers or Resolvers()
    done: dict[str, LockOutcome] = {}
    for image in images:
        current = lock.images.get(image.id)
        try:
            if current is not None and not upgrade and current.apt is not None and current.resolved_from == lock.resolution(image):
                # The pins were resolved from what the matrix asks now. When only what does not
                # change a resolution moved (the user, the environment, a template), the entry
                # keeps its pins and records its new inputs: the lock's diff shows it.
                kept = replace(current, inputs=lock.inputs(image, matrix))
                lock.images[image.id] = kept
                done[image.id] = LockOutcome(Relocked.KEPT if kept == current else Relocked.INPUTS_RECORDED)
                if kept.base is not None and "@" not in kept.base:
                    local = engine.resolve(image.base_image, pull=False)
                    if local is not None and local != kept.base:
                        # Another base can need other apt versions: pin them against this one.
                        apt = resolvers.apt(engine, local, image.python, apt_wanted(image))
                        lock.images[image.id] = replace(kept, base=local, apt=apt)
                        done[image.id] = LockOutcome(Relocked.REPINNED)
                continue
            base, constraints = None, None
            if image.parent is None:
                base = engine.resolve(image.base_image, pull=True)
                apt_base, installed = base, []
            elif lock.problem(matrix.image(image.parent), matrix) is None:
                parent = lock.images[image.parent]
                # The parent's exact set constrains the extension's: it adds, never swaps.
                constraints = pins(parent.requirements)
                apt_base, installed = parent.base, parent.apt_pins()
            else:
                done[image.id] = LockOutcome(
                    Relocked.FAILED, f"its parent {image.parent} is not locked: lock it first (include it in --only)"
                )
                continue
            # Re-resolving an entry (its packages changed) keeps its other pins; --upgrade drops them.
            preferences = current.requirements if current is not None and not upgrade else None
            requirements = resolvers.pip(
                direct_requirements(image), python=image.python, index_url=image.index_url, constraints=constraints, preferences=preferences
            )
            apt = resolvers.apt(engine, str(apt_base), image.python, apt_wanted(image), installed) if apt_base else {}
        except ImagekitError as exc:
            done[image.id] = LockOutcome(Relocked.FAILED, exc.message)
            continue
        lock.images[image.id] = Locked(lock.inputs(image, matrix), base, requirements, apt, lock.resolution(image))
        done[image.id] = LockOutcome(Relocked.RESOLVED)
    return done


def update_lock(
    path: Path, matrix: Matrix, images: list[ImageSpec], engine: ContainerEngine, *, upgrade: bool, resolvers: Resolvers | None = None
) -> tuple[Lock, dict[str, LockOutcome]]:
    """The lock file at ``path`` brought up to date for ``images`` (entries for images the matrix no
    longer has dropped) and written, or left as it was when any image cannot be locked: a lock is
    never half written. Returns the lock and what happened per image."""
    lock = Lock.read(path) if path.is_file() else Lock(path)
    for stray in lock.strays(matrix):
        del lock.images[stray]
    done = relock(lock, images, matrix, engine, upgrade=upgrade, resolvers=resolvers)
    if all(outcome.state.ok for outcome in done.values()):
        lock.write(matrix.files)
    return lock, done
