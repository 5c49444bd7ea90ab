"""`imagekit manifest`: what is inside an image — pip and apt packages, CUDA libraries, sizes."""

from __future__ import annotations

import argparse

from imagekit import console
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, engine, load
from imagekit.cli.options import DEFAULT_MATRIX
from imagekit.core.manifest import human
from imagekit.stages.inspect import read_manifest
from imagekit.stages.ports import ImageStore

HELP = "what is inside an image: pip and apt packages, CUDA libraries, sizes"
OPTIONS = (o.MATRIX, o.FORMAT)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="a matrix image id (its tag), or any image reference (pulled when absent)")


def image_ref(args: Args, docker: ImageStore, name: str, *, pull: bool = True) -> str:
    """A matrix image id names its moving tag; anything else is an image reference, pulled when
    absent (unless ``pull`` is false)."""
    if args.matrix or DEFAULT_MATRIX.is_file():
        matrix = load(args)
        if any(i.id == name for i in matrix.images):
            name = matrix.image(name).tag
    if pull:
        docker.ensure(name)
    return name


def run(args: Args, use: Adapters) -> int:
    docker = engine(use)
    m = read_manifest(docker, image_ref(args, docker, args.image))
    if args.format == "json":
        console.print_json(m.as_dict())
        return 0
    cuda = ", ".join(f"{n} {v}" for n, v in m.cuda_libraries.items()) or "none"
    console.info(f"{m.ref} ({m.image_id}): {human(m.size)}, Python {m.python}")
    console.info(
        f"CUDA: toolkit {m.cuda_toolkit or 'none (not a CUDA base)'}, torch built for {m.torch_cuda or 'no CUDA'}; libraries: {cuda}"
    )
    console.table(
        None,
        ["kind", "package", "version", "size"],
        [[p.kind, p.name, p.version, human(p.size)] for p in sorted(m.packages.values(), key=lambda p: (p.kind != "pip", p.name))],
    )
    if m.layers:  # the layer plan it was built with: which build step (layer) holds which pip packages
        console.table(
            "pip layers, in build order",
            ["layer", "bytes", "packages"],
            [[name, human(size), f"{len(packages)}: {', '.join(packages)}"] for name, packages, size in m.layers],
        )
    return 0
