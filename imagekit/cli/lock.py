"""`imagekit lock`: pin base digests, hashed requirement sets and apt versions into the lock file."""

from __future__ import annotations

from pathlib import Path

from imagekit import console
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, load, lock_path, write_lock
from imagekit.core.lock import Lock
from imagekit.core.matrix import ImageSpec, Matrix
from imagekit.errors import RunFailed

HELP = "pin base digests and hashed requirement sets into the lock file"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.CHECK, o.UPGRADE)


def run(args: Args, use: Adapters) -> int:
    matrix = load(args)
    path = lock_path(args, matrix)
    images = matrix.select(args.only, with_parents=True)
    if args.check:
        return check(matrix, images, path, whole=not args.only)
    return write_lock(use, matrix, images, path, upgrade=args.upgrade, title=f"lock: {path}")


def check(matrix: Matrix, images: list[ImageSpec], path: Path, *, whole: bool) -> int:
    if not path.is_file():  # as stale as a lock can be: the same exit as a stale one, the same remedy
        raise RunFailed(f"no lock file {path}", tip=f"run `imagekit lock` with the same --matrix files and commit {path}")
    lock = Lock.read(path)
    problems = lock.problems(images, matrix)
    problems += [f"{k} is in {path} but not in the matrix" for k in lock.strays(matrix) if whole]
    if problems:
        raise RunFailed(
            f"{path} is stale:\n  " + "\n  ".join(problems), tip=f"run `imagekit lock` with the same --matrix files and commit {path}"
        )
    console.info(f"ok: {path} is current for {len(images)} image(s)")
    return 0
