"""Where and when an image was built from: git revision, source URL, creation time (read from git by
`imagekit.adapters.git`)."""

from __future__ import annotations

from dataclasses import dataclass

# The time every build gets as SOURCE_DATE_EPOCH unless the caller sets one: the image config's
# and history's times, and on a bit-for-bit builder every file time in a new layer (clamped to it).
# Fixed, not the commit's time: a time that moves with each commit changes every layer's bytes
# (and BuildKit's cache for what follows a WORKDIR), so a one-pin change in a new commit would ship
# the whole image again (docs.docker.com "Build cache invalidation"). 1980-01-01, the zip epoch: the
# earliest time every archive format keeps. The commit's time goes into the `created` label.
LAYER_EPOCH = 315532800


@dataclass(frozen=True)
class Provenance:
    revision: str | None
    source: str | None
    created: str
    epoch: int  # the seconds `created` says
    layer_epoch: int = LAYER_EPOCH  # the build's SOURCE_DATE_EPOCH (see LAYER_EPOCH)


def public_url(url: str | None) -> str | None:
    """A remote URL fit for a label: a URL (not a local path), never with credentials embedded."""
    if not url or "://" not in url:
        return url if url and url.startswith("git@") else None
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('@', 1)[1]}" if "@" in rest.split("/", 1)[0] else url
