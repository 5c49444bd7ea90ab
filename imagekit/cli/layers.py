"""`imagekit layers A B`: which layers two images share, and what a host holding A pulls to get B."""

from __future__ import annotations

import argparse

from imagekit import console
from imagekit.adapters.registry import split_reference
from imagekit.cli import common
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, engine
from imagekit.cli.manifest import image_ref
from imagekit.core import grammar
from imagekit.core.layers import ImageLayers, step_text, transfer
from imagekit.core.manifest import human
from imagekit.errors import ConfigurationError, ImagekitError
from imagekit.stages.inspect import engine_layers, registry_layers

HELP = "which layers two images share, and how many bytes a host holding A pulls to get B"
OPTIONS = (o.MATRIX, o.FORMAT)


def arguments(parser: argparse.ArgumentParser) -> None:
    where = "a matrix image id or an image on the engine; a reference with a registry host is read from that registry, pulling nothing"
    parser.add_argument("old", metavar="A", help=f"the image a host holds: {where}")
    parser.add_argument("new", metavar="B", help="the image it is to get, likewise")


def _in_registry(ref: str) -> bool:
    try:
        split_reference(ref.partition("@")[0])
    except ImagekitError:
        return False
    return True


def _layers(args: Args, use: Adapters, ref: str) -> ImageLayers:
    if len(ref) > grammar.NAME_MAX + 200 or not grammar.full(grammar.IMAGE_REF, ref):
        raise ConfigurationError(f"{ref[:80]!r} is not an image reference or a matrix image id", tip="e.g. 2.6.0-cu121-py3.11-runtime")
    if _in_registry(ref):
        host, _ = split_reference(ref.partition("@")[0])
        # A host named on a command line gets `docker login`'s credentials for it, never the CI's
        # IMAGEKIT_REGISTRY_* secrets, which belong to the registry `publish` pushes to.
        registry = common.registry(use, host, environment_credentials=False)
        try:
            return registry_layers(registry, ref)
        finally:
            registry.close()
    docker = engine(use)
    return engine_layers(docker, image_ref(args, docker, ref, pull=False))


def run(args: Args, use: Adapters) -> int:
    moved = transfer(_layers(args, use, args.old), _layers(args, use, args.new))
    a, b = moved.a, moved.b
    unit = "compressed, as the registry sends them" if b.in_registry else "unpacked; read B from a registry for compressed sizes"
    if args.format == "json":
        console.print_json({
            "a": a.ref, "b": b.ref, "compared_by": moved.by, "sizes": "compressed" if b.in_registry else "unpacked",
            "layers": [{"diff_id": layer.diff_id, "blob": layer.blob, "size": layer.size, "created_by": layer.created_by, "in_a": had}
                       for layer, had in zip(b.layers, moved.have, strict=True)],
            "pulled_layers": len(moved.pulled), "pulled_bytes": moved.pulled_bytes,
        })  # fmt: skip
        return 0
    console.table(
        f"{b.ref}, layer by layer",
        ["#", "in A", "size", "made by"],
        [
            [str(i), "yes" if had else "NEW", human(layer.size) if layer.size is not None else "?", step_text(layer.created_by, 100)]
            for i, (layer, had) in enumerate(zip(b.layers, moved.have, strict=True), 1)
        ],
    )
    pulled = moved.pulled_bytes
    console.result(
        f"{len(b.layers) - len(moved.pulled)} of B's {len(b.layers)} layers are in A (compared by {moved.by}); a host holding A "
        f"pulls {len(moved.pulled)} layer(s), {human(pulled) if pulled is not None else 'of unknown size'} ({unit})"
    )
    return 0
