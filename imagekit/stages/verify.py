"""Built images → proof they rebuild to the same content: a rebuild without the build cache from
today's matrix and lock, compared with the image the moving tag names. Where the builder reaches
bit-for-bit (reproducibility.py), the two image digests must be equal, and equal digests are the
whole proof; otherwise, and to show what differs when digests do not agree, the two file trees are
compared path by path (type, mode, owner, size, sha256 of each file, link targets). There only file
times are ignored, and the few files that tools stamp with the time of the build, each listed
below with the reason."""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import IO, Literal

from imagekit import console
from imagekit.adapters.secrets import pip_secrets
from imagekit.core.render import Rendered
from imagekit.errors import ImagekitError
from imagekit.outcomes import Verified
from imagekit.reports import ReportsDir, write_atomic
from imagekit.stages.build import BuildRun
from imagekit.stages.identity import resolve_identity

# Files that package tools write with the build's date or time in them. Nothing else may differ.
STAMPED: dict[str, str] = {
    "etc/shadow": "useradd writes the day of the build as the password's last-change date",
    "etc/shadow-": "useradd's backup of /etc/shadow, same date field",
    "var/log/*": "apt and dpkg log each run with its time",
    "var/cache/ldconfig/aux-cache": "ldconfig caches library mtimes",
    "var/cache/debconf/*-old": "debconf's backup copies, written per run",
    "var/lib/dpkg/*-old": "dpkg's backup of its status, written per run",
    "var/lib/apt/extended_states": "apt's state, rewritten (same content) with a new order per run",
}


@dataclass(frozen=True)
class Entry:
    kind: Literal["file", "dir", "link", "hardlink", "other"]
    mode: int
    owner: tuple[int, int]
    size: int
    content: str  # sha256 of a file, target of a link, "" otherwise


def stamped(path: str) -> str | None:
    """Why ``path`` may differ between two builds, or None when it must not."""
    return next((why for pattern, why in STAMPED.items() if fnmatchcase(path, pattern)), None)


def file_tree(stream: IO[bytes]) -> dict[str, Entry]:
    """Every path of a `docker export` tar stream (read once, in order), with what identifies its
    content. Times are left out on purpose."""
    tree: dict[str, Entry] = {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            path = member.name.removeprefix("./").rstrip("/")
            content, kind = "", "other"
            if member.isfile():
                kind, digest = "file", hashlib.sha256()
                fh = tar.extractfile(member)
                assert fh is not None
                while block := fh.read(1 << 20):
                    digest.update(block)
                content = digest.hexdigest()
            elif member.isdir():
                kind = "dir"
            elif member.issym():
                kind, content = "link", member.linkname
            elif member.islnk():
                kind, content = "hardlink", member.linkname.removeprefix("./")
            tree[path] = Entry(kind, member.mode, (member.uid, member.gid), member.size, content)
    return tree


@dataclass(frozen=True)
class Difference:
    path: str
    what: str  # only in the original | only in the rebuild | changed: fields


def compare(original: dict[str, Entry], rebuilt: dict[str, Entry]) -> tuple[list[Difference], list[str]]:
    """Differences that matter, and the stamped paths that differed (allowed, reported)."""
    differences, allowed = [], []
    for path in sorted(original.keys() | rebuilt.keys()):
        a, b = original.get(path), rebuilt.get(path)
        if a == b:
            continue
        if stamped(path):
            allowed.append(path)
            continue
        if a is None or b is None:
            differences.append(Difference(path, "only in the rebuild" if a is None else "only in the original"))
            continue
        fields = [name for name in ("kind", "mode", "owner", "size", "content") if getattr(a, name) != getattr(b, name)]
        differences.append(Difference(path, "changed: " + ", ".join(fields)))
    return differences, allowed


@dataclass
class VerifyOutcome:
    image_id: str
    state: Verified = Verified.FAILED
    message: str = ""
    compared: Literal["", "image digests", "file trees", "image digests and file trees"] = ""  # "": nothing compared
    digests: tuple[str, str] | None = None  # (original, rebuild) image ids
    differences: list[Difference] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cache_reclaimed: int = 0  # bytes of the rebuild's build cache dropped afterwards


def verify_images(rendered: list[Rendered], run: BuildRun) -> list[VerifyOutcome]:
    """Each image rebuilt without the build cache and compared with the built one, one at a time
    (each rebuild is a whole cold build)."""
    with pip_secrets({r.image.index_url for r in rendered}) as secrets:
        return [verify_one(r, run, secrets[r.image.index_url], run.reports) for r in rendered]


def verify_one(rendered: Rendered, run: BuildRun, secrets: dict[str, Path], reports: ReportsDir) -> VerifyOutcome:
    """Rebuild ``rendered`` with no build cache into a temporary tag and compare its file tree with
    the built image's; the temporary image is removed whatever happens."""
    image = rendered.image
    start = time.monotonic()
    out = VerifyOutcome(image.id)
    try:
        existing = run.engine.inspect_image(image.tag)
        ident = resolve_identity(run.engine, rendered, pull=False)
        if existing is None or ident is None:
            missing = image.tag if existing is None else f"the base or parent of {image.id}"
            out.message = f"{missing} is not on this engine: run `imagekit build` first"
            return out
        # The existing image is whatever the moving tag names: the rebuild from today's matrix and
        # lock must match it, so a changed pin shows up as the paths it changed.
        was = (existing["Config"].get("Labels") or {}).get("io.imagekit.content-id", "")
        rebuild_tag = f"{image.repository}:{image.id}-verify"
        log_path = reports.log("verify", image.id)
        console.info(f"{image.id}: rebuilding without the build cache (log: {log_path})")
        cache_before = run.engine.build_cache_ids()
        paths = 0
        try:
            rc = run.docker_build(ident, secrets, [rebuild_tag], log_path, lambda line: None, no_cache=True)
            if rc != 0:
                out.message = f"the rebuild failed (docker build exited {rc}); log: {log_path}"
                return out
            rebuilt_id = str((run.engine.inspect_image(rebuild_tag) or {}).get("Id"))
            out.digests = (str(existing["Id"]), rebuilt_id)
            bit_for_bit = bool(run.reproducibility and run.reproducibility.bit_for_bit)
            if bit_for_bit and rebuilt_id == existing["Id"]:
                out.compared = "image digests"
            else:
                console.info(f"{image.id}: comparing the file trees")
                with run.engine.exported(existing["Id"]) as stream:
                    original = file_tree(stream)
                with run.engine.exported(rebuild_tag) as stream:
                    rebuilt = file_tree(stream)
                out.differences, out.allowed = compare(original, rebuilt)
                paths = len(original)
                out.compared = "image digests and file trees" if bit_for_bit else "file trees"
                if bit_for_bit:
                    # This builder makes equal digests: equal files are not enough, the digests must agree.
                    out.differences.insert(0, Difference("(image digest)", f"changed: {existing['Id']} → {rebuilt_id}"))
        finally:
            run.engine.remove_image(rebuild_tag)
            out.cache_reclaimed = _drop_rebuild_cache(run, image.id, cache_before)
        out.state = Verified.DIFFERENT if out.differences else Verified.SAME
        inputs = (
            "same inputs"
            if was == ident.content_id
            else f"inputs changed since it was built (content {was[:12]} → {ident.content_id[:12]})"
        )
        if out.differences:
            out.message = f"{out.compared} compared: {len(out.differences)} path(s) differ; {inputs}"
        elif out.compared == "image digests":
            out.message = f"image digests compared: both {existing['Id'][:19]}, the same bytes; {inputs}"
        else:
            out.message = f"file trees compared: {paths} paths equal ({len(out.allowed)} stamped path(s) allowed); {inputs}"
    except ImagekitError as exc:
        out.message = exc.message
    finally:
        out.seconds = time.monotonic() - start
        write_atomic(reports.verify_record(image.id), json.dumps(asdict(out), indent=2) + "\n")
    return out


def _drop_rebuild_cache(run: BuildRun, image_id: str, before: set[str]) -> int:
    """A cold rebuild leaves a second copy of every layer (gigabytes of torch) in the build cache
    once its image is removed, and Engine 20.10 runs no cache GC by default: drop it. A failure
    here costs disk, never the verdict."""
    try:
        reclaimed = run.engine.drop_build_cache(before)
    except ImagekitError as exc:
        console.warn(f"{image_id}: the rebuild's build cache stays: {exc.message}")
        return 0
    console.info(f"{image_id}: dropped the rebuild's build cache ({reclaimed / 1e9:.2f} GB)")
    return reclaimed
