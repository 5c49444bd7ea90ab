"""Package manifests: what is inside an image (pip and apt packages with versions and sizes, the
CUDA libraries), as the image's last build step wrote it (imagekit/data/write_manifest.py).
Parsed (`parse`, from the bytes `imagekit.stages.inspect` reads out of an image), shown, and
compared between two images (`imagekit manifest`, `imagekit diff`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from imagekit.core.source import json_problems, listed
from imagekit.errors import ImagekitError

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
    # The layer plan it was built with: (layer name, its pip packages, their installed bytes); empty
    # for an image built before imagekit split the pip set.
    layers: tuple[tuple[str, tuple[str, ...], int], ...] = ()

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
            "layers": [{"name": name, "packages": list(packages), "size": size} for name, packages, size in self.layers],
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


# The JSON write_manifest.py prints, declared: every key it writes, nothing else.
_Size = Annotated[StrictInt, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Package(_Model):
    version: StrictStr
    size: _Size  # bytes installed


class _Cuda(_Model):
    toolkit: StrictStr | None  # None on a plain OS base
    torch: StrictStr | None  # None when torch is not a CUDA build
    libraries: dict[StrictStr, StrictStr]


class _Sizes(_Model):
    pip: _Size
    apt: _Size


class _Layer(_Model):
    name: StrictStr
    packages: list[StrictStr]
    size: _Size  # its packages' installed bytes


class _ManifestFile(_Model):
    schema_: Literal[1] = Field(alias="schema")  # SCHEMA
    image: StrictStr
    python: StrictStr
    cuda: _Cuda
    pip: dict[StrictStr, _Package]
    apt: dict[StrictStr, _Package]
    size: _Sizes  # totals per kind, for a reader of the raw file
    layers: list[_Layer] | None = None  # absent from images built before the layer plan


def parse(raw: bytes, ref: str, size: int) -> PackageManifest:
    """The package manifest ``raw`` (the bytes of MANIFEST_PATH in image ``ref``, whose size on
    the engine is ``size``); an ImagekitError naming each bad field when it is not one."""

    def unreadable(problems: list[str]) -> ImagekitError:
        return ImagekitError(
            f"{ref}: {MANIFEST_PATH} is not a package manifest imagekit can read" + listed(problems),
            tip="rebuild it with `imagekit build`",
        )

    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # ValueError: not JSON, or not UTF-8
        raise unreadable([f"not JSON ({str(exc)[:120]})"]) from None
    # The schema first: a manifest of another schema differs in more than one field, and the
    # schema is the one to name.
    if not isinstance(data, dict):
        raise unreadable(["(top level): must be a JSON object"])
    if "schema" not in data:
        raise unreadable([f"schema: required field is missing (expected {SCHEMA})"])
    if type(data["schema"]) is not int or data["schema"] != SCHEMA:  # not true, nor 1.0
        raise unreadable([f"schema: {json.dumps(data['schema'])[:40]}, expected {SCHEMA}"])
    try:
        model = _ManifestFile.model_validate(data)
    except ValidationError as exc:
        raise unreadable(json_problems(exc)) from None
    return PackageManifest(
        ref=ref,
        image_id=model.image,
        size=size,
        python=model.python,
        cuda_toolkit=model.cuda.toolkit,
        torch_cuda=model.cuda.torch,
        cuda_libraries=dict(model.cuda.libraries),
        packages={
            (kind, name): Package(kind, name, p.version, p.size)
            for kind, packages in (("pip", model.pip), ("apt", model.apt))
            for name, p in packages.items()
        },
        layers=tuple((layer.name, tuple(layer.packages), layer.size) for layer in model.layers or []),
    )
