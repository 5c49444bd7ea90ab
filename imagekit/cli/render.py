"""`imagekit render`: write each image's Dockerfile and build context."""

from __future__ import annotations

from imagekit import console
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, load, lock_path, rendered
from imagekit.core.lock import Lock
from imagekit.core.render import write_all

HELP = "write each image's Dockerfile and build context"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.OUT)


def run(args: Args, use: Adapters) -> int:
    matrix = load(args)
    path = lock_path(args, matrix)
    # Without a lock it still shows what it can (requirements unpinned): rendering is for reading.
    found = rendered(matrix, matrix.select(args.only), Lock.read(path) if path.is_file() else None)
    for r, folder in zip(found, write_all(found, args.out), strict=True):
        console.info(f"{r.image.id}: {folder / 'Dockerfile'}")
        for name, packages in r.layers:
            shown = ", ".join(packages[:6]) + (f", … ({len(packages)} packages)" if len(packages) > 6 else "")
            console.info(f"  layer {name}: {shown or 'not locked yet'}")
    return 0
