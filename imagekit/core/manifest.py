"""Package manifests: what is inside an image (pip and apt packages with versions and sizes, the
CUDA libraries), as the image's last build step wrote it (imagekit/data/write_manifest.py).
Parsed (read from an image by `imagekit.stages.inspect`), shown, and compared between two images (`imagekit manifest`, `imagekit diff`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEMA = 1
# Where the image's last build step writes its manifest (imagekit/data/write_manifest.py).
MANIFEST_SCRIPT = "write_manifest.py"
MANIFEST_PATH = "/opt/imagekit/manifest.json"


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
