"""Where and when an image was built from: git revision, source URL, creation time (read from git by
`imagekit.adapters.git`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provenance:
    revision: str | None
    source: str | None
    created: str
    epoch: int  # SOURCE_DATE_EPOCH: the seconds `created` says


def public_url(url: str | None) -> str | None:
    """A remote URL fit for a label: a URL (not a local path), never with credentials embedded."""
    if not url or "://" not in url:
        return url if url and url.startswith("git@") else None
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('@', 1)[1]}" if "@" in rest.split("/", 1)[0] else url
