"""How far this host's builder makes two builds of one image the same, found out by building a
tiny probe image rather than read from a version string (Debian's buildx reports the engine's
BuildKit as `v0.0.0+unknown`). The answer is cached per builder (README "Reproducible builds"):

- bit-for-bit: two builds give one image id. Reached where BuildKit (>= 0.13) can write the image
  as an OCI archive with `rewrite-timestamp=true` and SOURCE_DATE_EPOCH, and the engine's `docker
  load` keeps its manifest: the containerd image store. `imagekit verify` then demands equal digests.
- timestamps: SOURCE_DATE_EPOCH fixes the image config's and history's times (BuildKit >= 0.11),
  but file times in new layers are the build's, so digests differ: the classic store, whose
  exporter ignores rewrite-timestamp and refuses OCI archives. `verify` compares file trees.
- file tree: neither (BuildKit < 0.11, e.g. Engine 20.10's 0.8). `verify` compares file trees.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from imagekit.adapters import host
from imagekit.adapters.buildkit import LOAD, OCI, Builder, Method
from imagekit.errors import ImagekitError
from imagekit.reports import write_atomic
from imagekit.stages.ports import BuildRunner, Engine

Level = Literal["file tree", "timestamps", "bit-for-bit"]
FILE_TREE: Level = "file tree"
TIMESTAMPS: Level = "timestamps"
BIT_FOR_BIT: Level = "bit-for-bit"
PROBE_EPOCH = 1700000000  # any fixed time; the probe checks that the image carries it
# Bump when the probe changes what it checks, so cached answers from an older probe are not reused.
PROBE_SCHEMA = 1
PROBE_DOCKERFILE = "FROM scratch\nCOPY stamp /stamp\n"


@dataclass(frozen=True)
class Reproducibility:
    level: Level
    method: Method  # how a build's image reaches the engine (adapters/buildkit.py)
    evidence: str  # what the probe saw
    probed: str  # when (ISO time), and whether this run or a cached answer

    @property
    def source_date_epoch(self) -> bool:
        return self.level != FILE_TREE

    @property
    def bit_for_bit(self) -> bool:
        return self.level == BIT_FOR_BIT

    def describe(self) -> str:
        what = {
            FILE_TREE: "equal file trees; image times and digests differ per build",
            TIMESTAMPS: "equal file trees and image times (SOURCE_DATE_EPOCH); file times in layers differ, so digests differ",
            BIT_FOR_BIT: "equal image digests (SOURCE_DATE_EPOCH, rewrite-timestamp, OCI archive loaded)",
        }[self.level]
        return f"{self.level}: {what}; probe: {self.evidence} ({self.probed})"


def judge(
    oci_ids: tuple[str | None, str | None], oci_failure: str, load_created: str | None, load_failure: str
) -> tuple[Level, Method, str]:
    """(level, method, evidence) from what the probe builds gave: the image ids of two OCI-archive
    builds of the same context with different file times (None: that build failed, why in
    ``oci_failure``), and the `created` time of a loaded build given SOURCE_DATE_EPOCH."""
    first, second = oci_ids
    if first and second and first == second:
        return BIT_FOR_BIT, OCI, "two builds with different file times, written as OCI archives and loaded, gave one image id"
    oci = (
        "builds written as OCI archives gave different image ids"
        if first and second
        else f"no OCI archive with rewrite-timestamp ({oci_failure})"
        if oci_failure
        else "no OCI archive with rewrite-timestamp (a builder without buildx)"
    )
    if load_created is None:
        return FILE_TREE, LOAD, f"{oci}; the loaded probe build failed ({load_failure})"
    if _seconds(load_created) == PROBE_EPOCH:
        return TIMESTAMPS, LOAD, f"{oci}; a loaded build carries SOURCE_DATE_EPOCH as its time"
    return FILE_TREE, LOAD, f"{oci}; a loaded build ignores SOURCE_DATE_EPOCH (created {load_created})"


def _seconds(created: str) -> int | None:
    """Docker's `Created` (UTC, RFC 3339, nanoseconds or none) → seconds since the epoch."""
    try:
        return int(datetime.strptime(created[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    except ValueError:
        return None


def cache_key(builder: Builder, engine: Engine) -> str:
    info, version = engine.info(), engine.version()
    parts = [PROBE_SCHEMA, info.get("ID"), version.get("Version"), engine.store, os.path.realpath(builder.docker),
             builder.kind, builder.client_version, builder.buildx_version]  # fmt: skip
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def detect(builder: Builder, engine: Engine, runner: BuildRunner, *, cache: Path | None = None) -> Reproducibility:
    """The builder's level: the cached answer for this builder and engine, else a probe's."""
    path = cache or host.cache_dir() / "builders.json"
    try:
        key = cache_key(builder, engine)
    except ImagekitError:
        return Reproducibility(FILE_TREE, LOAD, "no engine to probe", "not probed")
    known = _read(path)
    if key in known:
        try:
            return Reproducibility(**{**known[key], "probed": f"probed {known[key]['probed']}, cached in {path}"})
        except TypeError:
            pass  # an entry of another shape: probe again
    level, method, evidence = probe(builder, engine, runner)
    when = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    found = Reproducibility(level, method, evidence, when)
    known[key] = asdict(found)
    try:
        write_atomic(path, json.dumps(known, indent=2, sort_keys=True) + "\n")
    except OSError:
        pass  # an unwritable cache costs a probe next time, nothing else
    return Reproducibility(level, method, evidence, f"probed now, {when}")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def probe(builder: Builder, engine: Engine, runner: BuildRunner) -> tuple[Level, Method, str]:
    """Build a one-file image from scratch (no base, no network): twice as an OCI archive with
    different file times, and once loaded with SOURCE_DATE_EPOCH. Everything it makes is removed."""
    run = uuid.uuid4().hex[:8]
    names: list[str] = []
    cache_before = engine.build_cache_ids()
    with tempfile.TemporaryDirectory(prefix="imagekit-probe-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(PROBE_DOCKERFILE)
        stamp = context / "stamp"
        stamp.write_text("imagekit reproducibility probe\n")

        def build(method: Method, mtime: float) -> tuple[dict[str, Any] | None, str]:
            name = f"imagekit-probe-{run}:{len(names)}"
            names.append(name)
            os.utime(stamp, (mtime, mtime))
            tarball = context / "image.tar" if method == OCI else None
            argv, env = builder.command(context, [name], {}, {}, no_cache=True, source_date_epoch=PROBE_EPOCH, oci_tarball=tarball)
            log_path = context / "build.log"
            with log_path.open("w", encoding="utf-8") as log:
                rc = runner.run(argv, env, log)
            lines = [line.strip() for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
            if rc != 0:
                errors = [line for line in lines if line.startswith("ERROR")] or lines or [f"exit {rc}"]
                return None, errors[0][:300]
            try:
                if tarball is not None:
                    engine.load(tarball, name)
                    tarball.unlink()
            except ImagekitError as exc:
                return None, exc.message[:300]
            return engine.inspect_image(name), ""

        try:
            oci_ids: tuple[str | None, str | None] = (None, None)
            oci_failure = ""
            if builder.kind == "buildx":
                now = time.time()
                first, oci_failure = build(OCI, now - 3600)
                second, failure = build(OCI, now) if first else (None, "")
                oci_failure = oci_failure or failure
                oci_ids = ((first or {}).get("Id"), (second or {}).get("Id"))
            loaded, load_failure = build(LOAD, time.time())
            created = str(loaded["Created"]) if loaded else None
            return judge(oci_ids, oci_failure, created, load_failure)
        finally:
            for name in names:
                engine.remove_image(name)
            try:
                engine.drop_build_cache(cache_before)
            except ImagekitError:
                pass  # a few bytes of probe cache are not worth failing a build
