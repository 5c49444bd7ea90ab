"""The lock file: per image, the base image's digest, the complete hashed requirement set and the
apt packages with their dependencies, each at its exact version, written by `imagekit lock` and committed beside the matrix, so an image rebuilds to the same
content months later. Each entry records a hash of the matrix inputs it was resolved from; an
entry whose inputs changed is stale, and builds refuse it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, ValidationError

from imagekit.core import grammar
from imagekit.core.matrix import ID_MAX, ImageSpec, Matrix, held_to, validation_problems
from imagekit.core.source import Origin, locate, read_yaml
from imagekit.errors import ConfigurationError, MatrixError
from imagekit.files import write_atomic

SCHEMA = 2  # 2: `inputs` covers everything that reaches the image; `resolved_from`, what the pins came from
HEADER = """\
# Written by `imagekit lock` from {files}. Do not edit: change the matrix and run
# `imagekit lock` again; `imagekit lock --check` (CI) fails when this file is stale.
"""
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;]+)", re.MULTILINE)


def default_path(matrix: Matrix) -> Path:
    """Beside the last matrix file, named after it: each overlay combination has its own lock
    (`matrix.yaml` → `matrix.lock`; `… overlays/local-debian.yaml` → `overlays/local-debian.lock`)."""
    return matrix.files[-1].with_suffix(".lock")


def direct_requirements(image: ImageSpec) -> list[str]:
    """What the matrix asks an image to install; the lock resolves it to everything it needs."""
    wanted = [f"torch=={image.torch}", f"torchaudio=={image.torchaudio}", *image.packages]
    return wanted + list(image.extension.packages) if image.extension else wanted


# What the templates install per stage, before pinning (README "The lock file"). `system` only when
# the base lacks the matrix's Python with venv and ensurepip: a site's own base may bring it.
SYSTEM = ("python{py}", "python{py}-venv", "ca-certificates")
DEVEL = ("build-essential", "git", "ninja-build", "python{py}-dev")


def wanted(flavor: str, python: str, extension_apt: tuple[str, ...] | None) -> dict[str, list[str]]:
    """Stage → the apt packages an image asks for. An extension has one stage, its own."""
    if extension_apt is not None:
        return {"extension": list(extension_apt)} if extension_apt else {}
    stages = {"system": [p.format(py=python) for p in SYSTEM]}
    if flavor == "devel":
        stages["devel"] = [p.format(py=python) for p in DEVEL]
    return stages


def apt_wanted(image: ImageSpec) -> dict[str, list[str]]:
    """Stage → the apt packages ``image`` asks for, before the lock pins them."""
    return wanted(image.flavor, image.python, image.extension.apt if image.extension else None)


def pins(requirements: str) -> list[str]:
    """name==version of every package in a hashed requirements text."""
    return [f"{name}=={version}" for name, version in _PIN.findall(requirements)]


@dataclass(frozen=True)
class Locked:
    inputs: str  # sha256 of everything that reaches the image (Lock.inputs)
    base: str | None  # a base image's digest (name@sha256:…) or local image id; extensions: None
    requirements: str  # `pip install --require-hashes -r` text
    apt: dict[str, list[str]] | None = None  # stage → name=version; None: locked before apt was pinned
    resolved_from: str = ""  # sha256 of what the pins were resolved from (Lock.resolution)

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "resolved_from": self.resolved_from,
            "base": self.base,
            "requirements": self.requirements,
            "apt": self.apt,
        }

    def apt_pins(self) -> list[str]:
        return [pin for stage in (self.apt or {}).values() for pin in stage]


@dataclass
class Lock:
    path: Path
    images: dict[str, Locked] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Lock:
        """The lock file, held to its grammar like any input: it comes through pull requests too,
        and what it pins lands in requirements.txt and in apt's argument list."""
        if not path.is_file():
            raise ConfigurationError(f"no lock file {path}", tip="run `imagekit lock` with the same --matrix files, and commit it")
        data, origins = read_yaml(path, "lock")
        try:
            model = _LockFile.model_validate(data)
        except ValidationError as exc:
            problems = validation_problems(exc, _LockFile, lambda key: locate(origins, key, Origin(path, 1)))
            raise MatrixError(
                problems, subject=f"the lock file {path}", tip="run `imagekit lock` to rewrite it, and review what changed"
            ) from None
        images = {
            k: Locked(
                # Schema 1 recorded only what the pins came from: its entries keep their pins, and
                # `imagekit lock` records their inputs.
                v.inputs if model.schema_ == SCHEMA else "",
                v.base,
                v.requirements,
                v.apt,
                (v.resolved_from or "") if model.schema_ == SCHEMA else v.inputs,
            )
            for k, v in model.images.items()
        }
        return cls(path, images)

    def write(self, files: tuple[Path, ...]) -> None:
        data = {"schema": SCHEMA, "images": {k: v.as_dict() for k, v in sorted(self.images.items())}}
        text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=200, allow_unicode=True)
        write_atomic(self.path, HEADER.format(files=", ".join(f.name for f in files)) + text)

    def resolution(self, image: ImageSpec) -> str:
        """The hash of what ``image``'s pins are resolved from: its index, wheel, base and the
        packages it asks for and, for an extension, the parent's locked set (a re-locked parent
        re-locks its extensions)."""
        entry = image.entry()
        payload: dict[str, Any] = {k: entry[k] for k in ("python", "torch", "torchaudio", "packages", "index_url", "wheel", "base_image")}
        payload["direct"] = direct_requirements(image)
        payload["apt"] = apt_wanted(image)
        if image.parent is not None:
            parent = self.images.get(image.parent)
            payload["parent"] = hashlib.sha256(parent.requirements.encode()).hexdigest() if parent else None
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def inputs(self, image: ImageSpec, matrix: Matrix) -> str:
        """The hash an entry for ``image`` must carry: every field that reaches the image (user,
        base, environment, apt and pip packages, the extension's snippet) and the template that
        renders it, so a lock reviewed as current is current for all of them."""
        # Not how the layers are compressed: no pin depends on it, and a host whose builder cannot
        # write zstd builds the same lock's images with gzip (README "Layers").
        entry = {k: v for k, v in image.entry().items() if k != "compression"}
        payload = {"entry": entry, "resolution": self.resolution(image), "template": matrix.template_digest(image)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def problem(self, image: ImageSpec, matrix: Matrix) -> str | None:
        """Why ``image`` cannot be built from this lock, or None."""
        locked = self.images.get(image.id)
        if locked is None:
            return f"{image.id} is not in {self.path}"
        if locked.apt is None:
            return f"{image.id} is stale in {self.path}: it was locked before apt packages were pinned"
        if locked.inputs != self.inputs(image, matrix):
            return f"{image.id} is stale in {self.path}: the matrix, its templates (or its parent's lock) changed since it was locked"
        return None

    def problems(self, images: list[ImageSpec], matrix: Matrix) -> list[str]:
        return [p for p in (self.problem(i, matrix) for i in images) if p]

    def strays(self, matrix: Matrix) -> list[str]:
        ids = {i.id for i in matrix.images}
        return sorted(k for k in self.images if k not in ids)


def _requirements(text: str) -> str:
    """A hashed requirement set exactly as `imagekit lock` writes it: `name==version \\`, then
    `--hash=sha256:…` lines, comments between packages. Anything else (an option such as
    `--index-url`, a package without hashes) is refused before pip ever reads it."""
    expect_hash = False
    for number, line in enumerate(text.split("\n"), 1):
        if expect_hash:
            if not grammar.full(_HASH_LINE, line):
                raise ValueError(f"line {number} of the set: {line[:60]!r} is not a `--hash=sha256:…` line")
            expect_hash = line.endswith("\\")
        elif grammar.full(_PIN_LINE, line):
            expect_hash = True
        elif line.strip() and not (grammar.full(_COMMENT_LINE, line) and grammar.printable(line)):
            raise ValueError(f"line {number} of the set: {line[:60]!r} is not a pinned, hashed requirement or a comment")
    if expect_hash:
        raise ValueError("the set ends inside a requirement: its hashes are missing")
    return text


def _base(value: str) -> str:
    match = grammar.IMAGE_REF.fullmatch(value)
    if not (grammar.full(grammar.DIGEST, value) or (match and "@sha256:" in value and len(match.group("name")) <= grammar.NAME_MAX)):
        raise ValueError(f"{value[:80]!r} is not an image id (sha256:…) or a reference by digest (name@sha256:…)")
    return value


def _apt_pin(value: str) -> str:
    if not grammar.deb_package(value, pinned=True):
        raise ValueError(f"{value[:80]!r} is not a Debian package pinned as name=version")
    return value


_HEX64 = held_to(grammar.HEX64, "a sha256 (64 lowercase hex digits)")


_PIN_LINE = re.compile(rf"{grammar.PIN.pattern}(?: ; [A-Za-z0-9_.'\"<>=!~() -]{{1,200}})? \\")
_HASH_LINE = re.compile(r" {4}--hash=sha256:[0-9a-f]{64}(?: \\)?")
_COMMENT_LINE = re.compile(r" *#[^\\]{0,500}")


class _LockEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: Annotated[StrictStr, _HEX64]
    resolved_from: Annotated[StrictStr, _HEX64] | None = None
    base: Annotated[StrictStr, AfterValidator(_base)] | None
    requirements: Annotated[StrictStr, AfterValidator(_requirements)]
    apt: dict[Literal["system", "devel", "extension"], list[Annotated[StrictStr, AfterValidator(_apt_pin)]]] | None = None


class _LockFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal[1, 2] = Field(alias="schema")
    images: dict[Annotated[StrictStr, held_to(grammar.TAG, "an image id", max_len=ID_MAX)], _LockEntry]


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Requirement sets as literal blocks: a lock change is a readable diff, one package per line.
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)
