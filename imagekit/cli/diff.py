"""`imagekit diff`: what changed between two images; exit 1 when they differ, like diff(1)."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from imagekit import console
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, engine
from imagekit.cli.manifest import image_ref
from imagekit.core.manifest import change_line, diff
from imagekit.stages.inspect import read_manifest

HELP = "what changed between two images; exit 1 when they differ, like diff(1)"
OPTIONS = (o.MATRIX, o.FORMAT)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="A", help="a matrix image id, or any image reference (pulled when absent)")
    parser.add_argument("new", metavar="B", help="the same, compared with A")


def run(args: Args, use: Adapters) -> int:
    docker = engine(use)
    a = read_manifest(docker, image_ref(args, docker, args.old))
    b = read_manifest(docker, image_ref(args, docker, args.new))
    changes = diff(a, b)
    if args.format == "json":
        console.print_json({"a": a.ref, "b": b.ref, "changes": [asdict(c) for c in changes]})
    elif not changes:
        console.info(f"{a.ref} and {b.ref} hold the same packages, versions and sizes")
    else:
        console.info(f"from {a.ref} to {b.ref}: {sum(c.what in ('pip', 'apt') for c in changes)} package change(s)")
        for change in changes:
            console.result(change_line(change))
    return 1 if changes else 0
