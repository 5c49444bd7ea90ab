"""Image identity: the content id, the tags it yields, and the labels stamped at build time."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from imagekit.core.matrix import ImageSpec
from imagekit.core.provenance import Provenance
from imagekit.core.render import Rendered

# Bump when the meaning of the hashed payload changes, so old content tags are not reused.
SCHEMA = 1

# The matrix entry in the hash: these ImageSpec fields (an extension's also `parent`, and its
# ExtensionSpec's EXTENSION_FIELDS), named, not "all of them", so a field added to ImageSpec
# does not change every content id by itself. What reaches the image reaches it through the build
# context or the base, both hashed; these fields are the entry as it was hashed when ids were first
# given out, kept so those ids stay valid. Add a field here only knowingly: it changes every id.
ENTRY_FIELDS = (
    "id", "repository", "variant", "flavor", "torch", "torchaudio", "python", "cuda", "wheel", "wheel_cuda", "driver_min", "base_image",
    "index_url", "packages", "user", "uid",
)  # fmt: skip
EXTENSION_FIELDS = ("name", "packages", "apt", "env", "snippet", "snippet_name")


def hashed_entry(image: ImageSpec) -> dict[str, Any]:
    """The part of ``image`` that goes into its content id, as the pinned field lists above say."""
    spec = asdict(image)
    entry = {name: spec[name] for name in ENTRY_FIELDS}
    if image.extension is not None:  # base images keep the entry (and content id) they had before extensions
        entry["parent"] = spec["parent"]
        entry["extension"] = {name: spec["extension"][name] for name in EXTENSION_FIELDS}
    return entry


def context_digests(rendered: Rendered) -> dict[str, str]:
    """File name → sha256 (hex) of each file of ``rendered``'s build context, the Dockerfile
    included: the build context as both the content id and a GitHub cell's inputs id hash it."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in sorted(rendered.context.items())}


def content_id(rendered: Rendered, base_ref: str) -> str:
    """sha256 over everything that determines the image: the build context (Dockerfile included),
    the base image as resolved on this engine, and the matrix entry (`hashed_entry`). Host and time
    facts (revision, build date) are deliberately left out: they do not change what is inside the image."""
    payload: dict[str, Any] = {
        "schema": SCHEMA,
        "context": context_digests(rendered),
        "base": base_ref,
        "entry": hashed_entry(rendered.image),
    }
    if rendered.image.compression != "gzip":  # another image, with other layer digests; gzip ids stay as they were
        payload["compression"] = rendered.image.compression
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Identity:
    """A rendered image bound to its content id on this engine."""

    rendered: Rendered
    base_ref: str  # for an extension: its parent's image id
    content_id: str
    parent: Identity | None = None

    @property
    def content_tag(self) -> str:
        image = self.rendered.image
        return f"{image.repository}:{image.id}-{self.content_id[:12]}"

    @property
    def tags(self) -> list[str]:
        return [self.rendered.image.tag, self.content_tag]

    def labels(self, provenance: Provenance) -> dict[str, str]:
        labels = {
            "org.opencontainers.image.created": provenance.created,
            "io.imagekit.content-id": self.content_id,
            "io.imagekit.base": self.base_ref,
        }
        if self.parent is not None:
            labels["io.imagekit.parent-content-id"] = self.parent.content_id
        if provenance.revision:
            labels["org.opencontainers.image.revision"] = provenance.revision
        if provenance.source:
            labels["org.opencontainers.image.source"] = provenance.source
        return labels


def identify(rendered: Rendered, base_ref: str, parent: Identity | None = None) -> Identity:
    return Identity(rendered=rendered, base_ref=base_ref, content_id=content_id(rendered, base_ref), parent=parent)
