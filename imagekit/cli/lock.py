"""`imagekit lock`: pin base digests, hashed requirement sets and apt versions into the lock file."""

from __future__ import annotations

from pathlib import Path

from imagekit import console
from imagekit.cli import options as o
from imagekit.cli.common import Args, conclude, engine, load, lock_path
from imagekit.core.lock import Lock, pins
from imagekit.core.matrix import ImageSpec, Matrix
from imagekit.errors import RunFailed
from imagekit.stages.relock import relock

HELP = "pin base digests and hashed requirement sets into the lock file"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.CHECK, o.UPGRADE)


def run(args: Args) -> int:
    matrix = load(args)
    path = lock_path(args, matrix)
    images = matrix.select(args.only, with_parents=True)
    if args.check:
        return check(matrix, images, path, whole=not args.only)
    return write(matrix, images, path, upgrade=args.upgrade, title=f"lock: {path}")


def check(matrix: Matrix, images: list[ImageSpec], path: Path, *, whole: bool) -> int:
    lock = Lock.read(path)
    problems = lock.problems(images, matrix)
    problems += [f"{k} is in {path} but not in the matrix" for k in lock.strays(matrix) if whole]
    if problems:
        raise RunFailed(
            f"{path} is stale:\n  " + "\n  ".join(problems), tip=f"run `imagekit lock` with the same --matrix files and commit {path}"
        )
    console.info(f"ok: {path} is current for {len(images)} image(s)")
    return 0


def write(matrix: Matrix, images: list[ImageSpec], path: Path, *, upgrade: bool, title: str) -> int:
    """Bring the lock file at ``path`` up to date for ``images`` and write it, or write nothing
    when any of them cannot be locked. Also how `imagekit build` writes a missing lock."""
    lock = Lock.read(path) if path.is_file() else Lock(path)
    for stray in lock.strays(matrix):
        del lock.images[stray]
    done = relock(lock, images, matrix, engine(), upgrade=upgrade)
    failed = {i: outcome.message for i, outcome in done.items() if not outcome.state.ok}
    if failed:
        raise RunFailed(
            f"{len(failed)} of {len(images)} image(s) could not be locked; {path} is unchanged:\n  "
            + "\n  ".join(f"{i}: {m}" for i, m in failed.items()),
            tip="lock what this host can reach with --only, and the rest where their index and bases are reachable",
        )
    lock.write(matrix.files)
    return conclude(
        title,
        ["base", "packages"],
        [
            (i.id, done[i.id].state, [lock.images[i.id].base or f"(parent {i.parent})", str(len(pins(lock.images[i.id].requirements)))])
            for i in images
        ],
        failed="could not be locked",
        tip="",
    )
