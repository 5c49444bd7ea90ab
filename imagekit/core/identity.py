"""Image identity: the content id, the tags it yields, and the labels stamped at build time."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from imagekit.core.provenance import Provenance
from imagekit.core.render import Rendered

# Bump when the meaning of the hashed payload changes, so old content tags are not reused.
SCHEMA = 1


def content_id(rendered: Rendered, base_ref: str) -> str:
    """sha256 over everything that determines the image: the build context (Dockerfile included),
    the base image as resolved on this engine, and the matrix entry. Host and time facts (revision,
    build date) are deliberately left out: they do not change what is inside the image."""
    payload = {
        "schema": SCHEMA,
        "context": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(rendered.context.items())},
        "base": base_ref,
        "entry": rendered.image.entry(),
    }
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
