"""What is in an image: its package manifest, read from the image on the engine, and its layers,
read from the engine or from a registry."""

from __future__ import annotations

from imagekit.adapters.registry import split_image_reference
from imagekit.core import grammar, manifest
from imagekit.core.layers import ImageLayers, LayerInfo, sized
from imagekit.core.manifest import MANIFEST_PATH, PackageManifest
from imagekit.errors import ConfigurationError, ImagekitError
from imagekit.stages.ports import ImageStore, RegistryClient


def read_manifest(engine: ImageStore, ref: str) -> PackageManifest:
    attrs = engine.inspect_image(ref)
    if attrs is None:
        raise ConfigurationError(f"no image {ref} on this engine", tip="build it (`imagekit build`), or pull it first")
    raw = engine.read_file(ref, MANIFEST_PATH)
    if raw is None:
        raise ImagekitError(
            f"{ref} has no package manifest ({MANIFEST_PATH}): it was not built by this version of imagekit",
            tip="rebuild it with `imagekit build`",
        )
    return manifest.parse(raw, ref, engine.size(ref))


def engine_layers(engine: ImageStore, ref: str) -> ImageLayers:
    """``ref``'s layers as this engine holds them: by content (diff_id), with unpacked sizes."""
    if engine.inspect_image(ref) is None:
        raise ConfigurationError(f"no image {ref} on this engine", tip="build it (`imagekit build`), or pull it first")
    return ImageLayers(ref, sized(engine.layers(ref), engine.history(ref)), in_registry=False)


def registry_layers(registry: RegistryClient, ref: str) -> ImageLayers:
    """``ref``'s layers as its registry serves them, pulling nothing: each blob with its compressed
    size, and its diff_id from the image config (so it compares with an engine's image too)."""
    host, path, reference = split_image_reference(ref)
    found = registry.manifest(path, reference)
    if found is None:
        named = f"{path}@{reference}" if reference.startswith("sha256:") else f"{path}:{reference}"
        raise ConfigurationError(f"{host} has no image {named}", tip="check the reference, or publish it first")
    config = registry.config(path, found.config_digest)
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if (
        not isinstance(diff_ids, list)
        or len(diff_ids) != len(found.layers)
        or not all(grammar.full(grammar.DIGEST, str(d)) for d in diff_ids)
    ):
        raise ImagekitError(
            f"{ref}: its config does not list one diff_id per layer of its manifest", tip="this is not an image imagekit can compare"
        )
    history = config.get("history")
    entries = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
    # The config says which steps made a layer (`empty_layer`). A registry's text is shown: printable only.
    steps = [grammar.printable_part(str(h.get("created_by", ""))) for h in entries if not h.get("empty_layer")]
    steps = steps if len(steps) == len(diff_ids) else [""] * len(diff_ids)
    layers = tuple(
        LayerInfo(diff_id, size, blob, step) for diff_id, (blob, size, _), step in zip(diff_ids, found.layers, steps, strict=True)
    )
    return ImageLayers(ref, layers, in_registry=True)
