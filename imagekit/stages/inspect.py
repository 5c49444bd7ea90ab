"""An image's package manifest, read from the image on the engine."""

from __future__ import annotations

from imagekit.core import manifest
from imagekit.core.manifest import MANIFEST_PATH, PackageManifest
from imagekit.errors import ConfigurationError, ImagekitError
from imagekit.stages.ports import ImageStore


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
