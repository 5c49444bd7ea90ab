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
from typing import Any

import yaml

from .apt_resolver import resolve_apt, wanted
from .engine import Engine
from .errors import ConfigurationError, ImagekitError
from .matrix import ImageSpec, Matrix
from .reports import write_atomic
from .resolver import resolve

SCHEMA = 1
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


def apt_wanted(image: ImageSpec) -> dict[str, list[str]]:
    """Stage → the apt packages ``image`` asks for, before the lock pins them."""
    return wanted(image.flavor, image.python, image.extension.apt if image.extension else None)


def pins(requirements: str) -> list[str]:
    """name==version of every package in a hashed requirements text."""
    return [f"{name}=={version}" for name, version in _PIN.findall(requirements)]


@dataclass(frozen=True)
class Locked:
    inputs: str  # sha256 of what the entry was resolved from
    base: str | None  # a base image's digest (name@sha256:…) or local image id; extensions: None
    requirements: str  # `pip install --require-hashes -r` text
    apt: dict[str, list[str]] | None = None  # stage → name=version; None: locked before apt was pinned

    def as_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "base": self.base, "requirements": self.requirements, "apt": self.apt}

    def apt_pins(self) -> list[str]:
        return [pin for stage in (self.apt or {}).values() for pin in stage]


@dataclass
class Lock:
    path: Path
    images: dict[str, Locked] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Lock:
        if not path.is_file():
            raise ConfigurationError(f"no lock file {path}", tip="run `imagekit lock` with the same --matrix files, and commit it")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if data.get("schema") != SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA}")
            images = {
                str(k): Locked(str(v["inputs"]), v.get("base"), str(v["requirements"]), _apt(v.get("apt")))
                for k, v in data["images"].items()
            }
        except (yaml.YAMLError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"{path} is not a lock file imagekit can read ({exc})", tip="run `imagekit lock` to rewrite it"
            ) from None
        return cls(path, images)

    def write(self, files: tuple[Path, ...]) -> None:
        data = {"schema": SCHEMA, "images": {k: v.as_dict() for k, v in sorted(self.images.items())}}
        text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=200, allow_unicode=True)
        write_atomic(self.path, HEADER.format(files=", ".join(f.name for f in files)) + text)

    def inputs(self, image: ImageSpec) -> str:
        """The hash an entry for ``image`` must carry: its matrix inputs and, for an extension, the
        parent's locked set (a re-locked parent re-locks its extensions)."""
        entry = image.entry()
        payload: dict[str, Any] = {k: entry[k] for k in ("python", "torch", "torchaudio", "packages", "index_url", "wheel", "base_image")}
        payload["direct"] = direct_requirements(image)
        payload["apt"] = apt_wanted(image)
        if image.parent is not None:
            parent = self.images.get(image.parent)
            payload["parent"] = hashlib.sha256(parent.requirements.encode()).hexdigest() if parent else None
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def problem(self, image: ImageSpec) -> str | None:
        """Why ``image`` cannot be built from this lock, or None."""
        locked = self.images.get(image.id)
        if locked is None:
            return f"{image.id} is not in {self.path}"
        if locked.inputs != self.inputs(image):
            return f"{image.id} is stale in {self.path}: the matrix (or its parent's lock) changed since it was locked"
        if locked.apt is None:
            return f"{image.id} is stale in {self.path}: it was locked before apt packages were pinned"
        return None

    def problems(self, images: list[ImageSpec]) -> list[str]:
        return [p for p in (self.problem(i) for i in images) if p]

    def strays(self, matrix: Matrix) -> list[str]:
        ids = {i.id for i in matrix.images}
        return sorted(k for k in self.images if k not in ids)


def _apt(value: Any) -> dict[str, list[str]] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise ValueError("apt must map a stage to a list of name=version")
    return {str(k): [str(p) for p in v] for k, v in value.items()}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Requirement sets as literal blocks: a lock change is a readable diff, one package per line.
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def relock(lock: Lock, images: list[ImageSpec], matrix: Matrix, engine: Engine, *, upgrade: bool = False) -> dict[str, str]:
    """Bring ``lock`` up to date for ``images`` (in matrix order: parents first). A current entry is
    kept as it is, like any lock tool, unless ``upgrade``: re-locking must not drift. The one
    exception is a local base (pinned by image id), made per host: its pin follows this host's.
    Returns what happened per image: kept, re-pinned local base, resolved, or `failed: why`."""
    done: dict[str, str] = {}
    for image in images:
        current = lock.images.get(image.id)
        try:
            if current is not None and not upgrade and lock.problem(image) is None:
                done[image.id] = "kept"
                if current.base is not None and "@" not in current.base:
                    local = engine.resolve(image.base_image, pull=False)
                    if local is not None and local != current.base:
                        # Another base can need other apt versions: pin them against this one.
                        apt = resolve_apt(engine, local, image.python, apt_wanted(image))
                        lock.images[image.id] = Locked(current.inputs, local, current.requirements, apt)
                        done[image.id] = "re-pinned local base"
                continue
            base, constraints = None, None
            if image.parent is None:
                base = engine.resolve(image.base_image, pull=True)
                apt_base, installed = base, []
            elif lock.problem(matrix.image(image.parent)) is None:
                parent = lock.images[image.parent]
                # The parent's exact set constrains the extension's: it adds, never swaps.
                constraints = pins(parent.requirements)
                apt_base, installed = parent.base, parent.apt_pins()
            else:
                done[image.id] = f"failed: its parent {image.parent} is not locked: lock it first (include it in --only)"
                continue
            requirements = resolve(direct_requirements(image), python=image.python, index_url=image.index_url, constraints=constraints)
            apt = resolve_apt(engine, str(apt_base), image.python, apt_wanted(image), installed) if apt_base else {}
        except ImagekitError as exc:
            done[image.id] = f"failed: {exc.message}"
            continue
        lock.images[image.id] = Locked(lock.inputs(image), base, requirements, apt)
        done[image.id] = "resolved"
    return done
