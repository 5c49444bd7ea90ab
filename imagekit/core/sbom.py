"""A CycloneDX 1.6 SBOM per image, from what imagekit knows exactly (README "Signing and evidence"):
the lock's hashed pip set, its apt pins (a parent's too, for an extension), the base by digest, and,
from the package manifest the image's last build step wrote, the CUDA libraries torch loads and the
base's own Debian packages. Pure: no tool scans the image, so nothing in it is guessed.

Why CycloneDX and not SPDX 2.3: a component carries several hashes (the lock allows every wheel
hash pip may meet, and pip checks the one it installs against them), a package URL, and properties
(which CUDA library, which stage pinned it) without extensions; and its official JSON schema
validates the document in the tests (cyclonedx-python-lib ships it).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from imagekit import __version__
from imagekit.core.lock import Locked
from imagekit.core.manifest import PackageManifest
from imagekit.core.matrix import ImageSpec

SPEC_VERSION = "1.6"
# A fixed namespace: the same image content always gets the same serial number.
_NAMESPACE = uuid.UUID("5d0f3c2e-8f7b-4f0a-9a47-6b1f1de3a6c1")
_HASHED_PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;]+)[^\n]*\\\n((?:\s+--hash=sha256:[0-9a-f]{64}[ \\]*\n?)+)", re.M
)
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Subject:
    """The pushed image the SBOM describes."""

    name: str  # host[:port]/path/repository
    digest: str  # sha256:… of the image manifest
    content_id: str


@dataclass(frozen=True)
class Base:
    """What the image is built on: a reference by digest, or a local base's image id."""

    name: str
    digest: str
    pullable: bool  # False: a local image id, which no registry serves (no package URL then)


def hashed_pins(requirements: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, version, sha256 hashes) of each package in a hashed requirement set, as the lock writes it."""
    return [(m.group(1), m.group(2), tuple(_HASH.findall(m.group(3)))) for m in _HASHED_PIN.finditer(requirements)]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _oci_purl(name: str, digest: str) -> str:
    """The purl spec's form: the last path part, the digest, where it lives, and its tag if named."""
    location, _, last = name.rpartition("/")
    repository, _, tag = last.partition(":")
    url = f"{location}/{repository}" if location else repository
    return f"pkg:oci/{quote(repository, safe='')}@{quote(digest, safe='')}?repository_url={quote(url, safe='/:')}" + (
        f"&tag={quote(tag, safe='')}" if tag else ""
    )


def _property(name: str, value: str) -> dict[str, str]:
    return {"name": f"imagekit:{name}", "value": value}


def _library(ref: str, name: str, version: str, purl: str, properties: list[dict[str, str]]) -> dict[str, Any]:
    return {"type": "library", "bom-ref": ref, "name": name, "version": version, "purl": purl, "properties": properties}


def cyclonedx(image: ImageSpec, chain: list[Locked], manifest: PackageManifest | None, subject: Subject, base: Base) -> dict[str, Any]:
    """The SBOM of ``image`` as pushed (``subject``). ``chain``: its lock entry, then its parent's
    (an extension's pip set is complete, its apt pins are its own); ``base``: what the image is
    built on, by digest (the parent's pushed reference for an extension)."""
    own = chain[0]
    distro = "ubuntu" if "ubuntu" in f"{image.base_image} {base.name}".lower() else "debian"
    cuda = manifest.cuda_libraries if manifest else {}
    components: list[dict[str, Any]] = []
    components.append(
        {
            "type": "container",
            "bom-ref": "base",
            "name": base.name,
            "version": base.digest,
            **({"purl": _oci_purl(base.name, base.digest)} if base.pullable else {}),
            "properties": [_property("role", "parent image" if image.parent else "base image")],
        }
    )
    pip_names = set()
    for name, version, hashes in hashed_pins(own.requirements):
        normal = _normal(name)
        pip_names.add(normal)
        properties = [_property("source", "lock: pip")]
        if normal in cuda:
            properties.append(_property("cuda-library", "true"))
        component = _library(f"pip:{normal}", normal, version, f"pkg:pypi/{normal}@{quote(version, safe='')}", properties)
        components.append({**component, "hashes": [{"alg": "SHA-256", "content": h} for h in hashes]})
    pinned: dict[str, tuple[str, str]] = {}  # apt name → (version, stage)
    for entry in reversed(chain):  # the parent's pins first; an extension's own pins win
        for stage, stage_pins in (entry.apt or {}).items():
            for pin in stage_pins:
                name, _, version = pin.partition("=")
                pinned[name] = (version, stage)
    installed = {p.name: p.version for p in manifest.packages.values() if p.kind == "apt"} if manifest else {}
    for name in sorted(set(pinned) | set(installed)):
        version, source = pinned[name] if name in pinned else (installed[name], "base image")
        properties = [_property("source", f"lock: apt ({source})" if name in pinned else "base image (dpkg status)")]
        if name in cuda:
            properties.append(_property("cuda-library", "true"))
        purl = f"pkg:deb/{distro}/{quote(name, safe='')}@{quote(version, safe='')}?arch=amd64"
        components.append(_library(f"deb:{name}", name, version, purl, properties))
    refs = [c["bom-ref"] for c in components]
    metadata_props = [
        _property("content-id", subject.content_id),
        _property("image-id", image.id),
        _property("torch", image.torch),
        _property("wheel", image.wheel),
        _property("cuda", image.cuda),
        _property("python", image.python),
    ]
    if manifest is not None:
        metadata_props.append(_property("torch-cuda", manifest.torch_cuda or "none"))
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(_NAMESPACE, subject.digest)}",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "imagekit", "version": __version__}]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": subject.name,
                "version": subject.digest,
                "purl": _oci_purl(subject.name, subject.digest),
                "hashes": [{"alg": "SHA-256", "content": subject.digest.removeprefix("sha256:")}],
                "properties": metadata_props,
            },
        },
        "components": components,
        "dependencies": [{"ref": "image", "dependsOn": refs}, *({"ref": r} for r in refs)],
    }
