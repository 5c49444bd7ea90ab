"""An image's package manifest, read from the image on the engine."""

from __future__ import annotations

import json

from imagekit.adapters.docker_engine import Engine
from imagekit.core.manifest import MANIFEST_PATH, SCHEMA, Package, PackageManifest
from imagekit.errors import ConfigurationError, ImagekitError


def read_manifest(engine: Engine, ref: str) -> PackageManifest:
    attrs = engine.inspect_image(ref)
    if attrs is None:
        raise ConfigurationError(f"no image {ref} on this engine", tip="build it (`imagekit build`), or pull it first")
    raw = engine.read_file(ref, MANIFEST_PATH)
    if raw is None:
        raise ImagekitError(
            f"{ref} has no package manifest ({MANIFEST_PATH}): it was not built by this version of imagekit",
            tip="rebuild it with `imagekit build`",
        )
    try:
        data = json.loads(raw)
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA}")
        packages = {
            (kind, name): Package(kind, name, str(p["version"]), int(p["size"]))
            for kind in ("pip", "apt")
            for name, p in data[kind].items()
        }
        cuda = data["cuda"]
        return PackageManifest(
            ref=ref,
            image_id=str(data["image"]),
            size=engine.size(ref),
            python=str(data["python"]),
            cuda_toolkit=cuda["toolkit"],
            torch_cuda=cuda["torch"],
            cuda_libraries=dict(cuda["libraries"]),
            packages=packages,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ImagekitError(
            f"{ref}: {MANIFEST_PATH} is not a package manifest imagekit can read ({exc})", tip="rebuild it with `imagekit build`"
        ) from None
