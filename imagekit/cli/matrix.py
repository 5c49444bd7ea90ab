"""`imagekit matrix validate|list`: check the matrix files, or list the images they define."""

from __future__ import annotations

from imagekit import console
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, load, lock_path
from imagekit.core import cells
from imagekit.core.lock import Lock

HELP = "validate or list the matrix"
ACTIONS = {
    "validate": ("check the matrix files; exit 2 with file:line errors", (o.MATRIX,)),
    "list": ("list the images the matrix defines", (o.MATRIX, o.ONLY, o.LOCK, o.LIST_FORMAT, o.CHANGED_AGAINST, o.CHANGED_ONLY)),
}


def run(args: Args, use: Adapters) -> int:
    matrix = load(args)
    if args.action == "validate":
        console.info(f"ok: {len(matrix.images)} images from {', '.join(map(str, matrix.files))}")
        return 0
    images = matrix.select(args.only)
    if args.format in ("github", "github-tests"):
        path = lock_path(args, matrix)
        lock = Lock.read(path) if path.is_file() else None  # unlocked cells still list; their build locks them
        previous = cells.read_previous(args.changed_against) if args.changed_against else None
        found = cells.cells(matrix, lock, matrix.select(args.only, with_parents=True), previous, tests=args.format == "github-tests")
        console.print_json({"include": [c for c in found if c["changed"] or not args.changed_only]}, compact=True)
    elif args.format == "json":
        console.print_json([{**i.entry(), "tag": i.tag} for i in images])
    else:
        console.table(
            None,
            ["image", "base image (extensions: parent)", "cuda", "wheel", "driver >=", "tag"],
            [[i.id, i.base_image, i.cuda, i.wheel, i.driver_min, i.tag] for i in images],
        )
    return 0
