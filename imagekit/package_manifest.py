"""Package manifests: what is inside an image (pip and apt packages with versions and sizes, the
CUDA libraries), as the image's last build step wrote it (imagekit/data/write_manifest.py).
Read from an image, shown, and compared between two images (`imagekit manifest`, `imagekit diff`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .engine import Engine
from .errors import ConfigurationError, ImagekitError
from .render import MANIFEST_PATH

SCHEMA = 1


@dataclass(frozen=True)
class Package:
    kind: str  # pip | apt
    name: str
    version: str
    size: int  # bytes installed


@dataclass(frozen=True)
class PackageManifest:
    ref: str
    image_id: str  # the matrix image id the image was built as
    size: int  # the image's size on the engine
    python: str
    cuda_toolkit: str | None  # the base image's CUDA toolkit; None on a plain OS base
    torch_cuda: str | None  # the CUDA torch was built with (torch.version.cuda)
    cuda_libraries: dict[str, str]
    packages: dict[tuple[str, str], Package]  # (kind, name) → package

    def largest(self, count: int) -> list[Package]:
        return sorted(self.packages.values(), key=lambda p: (-p.size, p.kind, p.name))[:count]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "image": self.image_id,
            "size": self.size,
            "python": self.python,
            "cuda": {"toolkit": self.cuda_toolkit, "torch": self.torch_cuda, "libraries": self.cuda_libraries},
            **{
                kind: {p.name: {"version": p.version, "size": p.size} for p in self.packages.values() if p.kind == kind}
                for kind in ("pip", "apt")
            },
        }


def read(engine: Engine, ref: str) -> PackageManifest:
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


@dataclass(frozen=True)
class Change:
    what: str  # pip | apt | python | cuda toolkit | torch cuda | size
    name: str
    old: str | None  # None: added
    new: str | None  # None: removed
    size_delta: int = 0

    @property
    def sign(self) -> str:
        return "+" if self.old is None else "-" if self.new is None else "~"


def diff(a: PackageManifest, b: PackageManifest) -> list[Change]:
    """What changed from ``a`` to ``b``: added (+), removed (-) and changed (~) packages, Python,
    CUDA, and the image size. Empty when their contents agree."""
    changes = []
    for label, old, new in (
        ("python", a.python, b.python),
        ("cuda toolkit", a.cuda_toolkit, b.cuda_toolkit),
        ("torch cuda", a.torch_cuda, b.torch_cuda),
    ):
        if old != new:
            changes.append(Change(label, label, old or "none", new or "none"))
    for key in sorted(a.packages.keys() | b.packages.keys()):
        old_p, new_p = a.packages.get(key), b.packages.get(key)
        if old_p is not None and new_p is not None and old_p.version == new_p.version and old_p.size == new_p.size:
            continue
        delta = (new_p.size if new_p else 0) - (old_p.size if old_p else 0)
        changes.append(Change(key[0], key[1], old_p.version if old_p else None, new_p.version if new_p else None, delta))
    if changes or a.size != b.size:
        changes.append(Change("size", "image", human(a.size), human(b.size), b.size - a.size))
    return changes


def change_line(c: Change) -> str:
    versions = c.new if c.old is None else c.old if c.new is None else f"{c.old} → {c.new}"
    size = f" ({'+' if c.size_delta >= 0 else '-'}{human(abs(c.size_delta))})" if c.size_delta else ""
    name = "" if c.name == c.what else f"{c.name} "
    return f"{c.sign} {c.what:<12} {name}{versions}{size}"


def human(size: int) -> str:
    """Decimal units, as `docker images` shows sizes."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"
