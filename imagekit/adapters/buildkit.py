"""BuildKit through the docker CLI: the Docker SDK for Python cannot build with BuildKit
(docker/docker-py#2230), and the templates need BuildKit's cache and secret mounts. Builds run
`docker buildx build` where the buildx plugin exists, else `DOCKER_BUILDKIT=1 docker build` on a CLI
older than 23.0 (newer CLIs refuse that without buildx)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from imagekit.adapters import host
from imagekit.adapters.host import Probe
from imagekit.core.facts import version_tuple
from imagekit.errors import EngineError

BUILDER_TIP = (
    "install the buildx plugin (Debian/Ubuntu: `apt-get install docker-buildx` or docker-buildx-plugin), "
    "or put a docker CLI older than 23.0 first on PATH (Debian's docker.io installs one as /usr/bin/docker); "
    "IMAGEKIT_DOCKER=/path/to/docker picks a CLI explicitly"
)
ZSTD_TIP = (
    "zstd layers need buildx on the containerd image store (the bit-for-bit level `imagekit doctor` reports); "
    "on this host add an overlay with `publish: {compression: gzip}` and keep the lock (`--lock` the same file: "
    "compression changes no pin)"
)
# How a build's image reaches the engine: `load` (the exporter writes it into the image store), or
# `oci` (an OCI tarball with rewrite-timestamp=true, then `docker load`): the containerd store's
# exporter refuses rewrite-timestamp beside its unpack step (moby/buildkit#4230), the tarball does not.
Method = Literal["load", "oci"]
LOAD: Method = "load"
OCI: Method = "oci"


@dataclass(frozen=True)
class RegistryCache:
    """BuildKit's cache in a registry (`type=registry`), so a builder with an empty local cache
    builds an unchanged step from it. ``export``: also write it back (mode=max: every step's
    layers), which BuildKit's docker driver does only on the containerd image store
    (docker/buildx driver/docker/driver.go); elsewhere the build only reads it."""

    ref: str  # host[:port]/path/repository:buildcache-<image id>
    export: bool


@dataclass(frozen=True)
class Builder:
    docker: str  # path of the docker CLI
    kind: Literal["buildx", "buildkit"]  # `docker buildx build`, or `DOCKER_BUILDKIT=1 docker build` (CLI < 23)
    client_version: str
    buildx_version: str | None = None

    def describe(self, method: Method = LOAD) -> str:
        cli = f"{self.docker}, CLI {self.client_version}"
        if self.kind == "buildx":
            how = "--output type=oci,rewrite-timestamp=true, then docker load" if method == OCI else "--load"
            return f"docker buildx build {how} ({cli}, buildx {self.buildx_version or 'unknown'})"
        return f"DOCKER_BUILDKIT=1 docker build ({cli})"

    def command(
        self,
        context: Path,
        tags: list[str],
        labels: dict[str, str],
        secrets: dict[str, Path],
        build_args: dict[str, str] | None = None,
        *,
        no_cache: bool = False,
        source_date_epoch: int | None = None,
        oci_tarball: Path | None = None,
        compression: str = "gzip",
        cache: RegistryCache | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """The build command. ``source_date_epoch`` (BuildKit >= 0.11) fixes the image's times.
        ``oci_tarball``: write the image there as an OCI archive with every file time in new layers
        clamped to it (rewrite-timestamp, BuildKit >= 0.13), named after the first tag, for
        `Engine.load` (imagekit/reproducibility.py says when). ``compression`` other than gzip
        (zstd) needs the archive: every layer, the base's too, is compressed so (force-compression),
        and the containerd store keeps the blobs as loaded, so a push sends them as they are."""
        if compression != "gzip" and oci_tarball is None:
            raise EngineError(f"{compression} layers need a builder that writes OCI archives", tip=ZSTD_TIP)
        if self.kind == "buildx":
            # No provenance attestation: it records the build's start and end times, so no two
            # builds would share a digest, and the classic store drops it anyway.
            argv = [self.docker, "buildx", "build", "--provenance=false"]
            if oci_tarball is not None:
                output = f"type=oci,dest={oci_tarball},rewrite-timestamp=true,name={tags[0]}"
                if compression != "gzip":
                    output += f",compression={compression},force-compression=true"
                argv += ["--output", output]
            else:
                argv.append("--load")
        else:
            argv = [self.docker, "build"]
        argv += ["--progress=plain", "--file", str(context / "Dockerfile")]
        if no_cache:
            argv.append("--no-cache")
        if cache is not None:
            if self.kind != "buildx":
                raise EngineError(
                    "a registry cache needs the buildx plugin: `DOCKER_BUILDKIT=1 docker build` reads only inline cache",
                    tip="leave --cache-registry out on this host, or install buildx",
                )
            argv += ["--cache-from", f"type=registry,ref={cache.ref}"]
            if cache.export:
                # image-manifest: one OCI image manifest, which every registry stores (ECR refuses a
                # cache index); ignore-error: a cache that cannot be written never fails the build.
                argv += ["--cache-to", f"type=registry,ref={cache.ref},mode=max,image-manifest=true,oci-mediatypes=true,ignore-error=true"]
        for tag in tags if oci_tarball is None else []:
            argv += ["--tag", tag]
        build_args = dict(build_args or {})
        if source_date_epoch is not None:
            build_args["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
        for key, value in sorted(build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in sorted(labels.items()):
            argv += ["--label", f"{key}={value}"]
        for sid, src in sorted(secrets.items()):
            argv += ["--secret", f"id={sid},src={src}"]
        argv.append(str(context))
        env = dict(os.environ)
        if self.kind == "buildkit":
            env["DOCKER_BUILDKIT"] = "1"
        return argv, env


def _cli_version(docker_cli: str, probe: Probe | None = None) -> str | None:
    out = (probe or host.run_probe)([docker_cli, "version", "--format", "{{.Client.Version}}"])
    if out is None:
        return None
    # The client version prints even when the engine is unreachable (rc 1); take the first line.
    first = out.stdout.strip().splitlines()[:1]
    return first[0] if first else None


def _buildx_version(docker_cli: str, probe: Probe | None = None) -> str | None:
    """buildx's version (`github.com/docker/buildx v0.29.1 …` → `0.29.1`); None without the plugin."""
    out = (probe or host.run_probe)([docker_cli, "buildx", "version"])
    if out is None or out.returncode != 0:
        return None
    words = out.stdout.split()
    return words[1].removeprefix("v") if len(words) > 1 else "unknown"


def _major(version: str) -> int:
    try:
        return version_tuple(version.split("+")[0].split("-")[0])[0]
    except ValueError:
        return 0


def docker_clis(path: str, explicit: str | None = None) -> list[str]:
    """Every docker CLI in the folders of ``path`` (a PATH value), in order, each real file once;
    ``explicit`` (IMAGEKIT_DOCKER) alone when set."""
    if explicit:
        return [explicit]
    seen: set[str] = set()
    found = []
    for folder in path.split(os.pathsep):
        candidate = Path(folder or ".") / "docker"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            real = str(candidate.resolve())
            if real not in seen:
                seen.add(real)
                found.append(str(candidate))
    return found


def find_builder(probe: Probe | None = None, clis: list[str] | None = None) -> Builder:
    """The first of ``clis`` (default: the docker CLIs on PATH, or IMAGEKIT_DOCKER) that can drive
    BuildKit; a newer CLI without buildx that hides an older one (common on hosts with Debian's
    docker.io) is passed over, not fatal. ``probe`` runs `docker version` and `docker buildx
    version` (host.run_probe unless given)."""
    if clis is None:
        clis = docker_clis(os.environ.get("PATH", ""), os.environ.get("IMAGEKIT_DOCKER"))
    if not clis:
        raise EngineError("no docker CLI found on PATH", tip=BUILDER_TIP)
    refused = []
    for cli in clis:
        version = _cli_version(cli, probe)
        if version is None:
            refused.append(f"{cli} (does not run)")
            continue
        buildx = _buildx_version(cli, probe)
        if buildx is not None:
            return Builder(cli, "buildx", version, buildx)
        if _major(version) < 23:
            return Builder(cli, "buildkit", version)
        refused.append(f"{cli} (CLI {version}, no buildx plugin)")
    raise EngineError("no docker CLI here can build with BuildKit: " + "; ".join(refused), tip=BUILDER_TIP)


class BuildProcesses:
    """Runs BuildKit builds through the docker CLI (stages/ports.py `BuildRunner`), and knows the
    ones under way, so an interrupt can stop them rather than wait for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self._stopped = False

    def _start(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        with self._lock:
            if self._stopped:
                raise KeyboardInterrupt
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
            self._running.add(proc)
            return proc

    def run(self, argv: list[str], env: dict[str, str], log: IO[str], on_line: Callable[[str], None] | None = None) -> int:
        """Run a build, streaming its output into ``log`` (and each line to ``on_line``); its exit code."""
        proc = self._start(argv, env)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                if on_line:
                    on_line(line.rstrip("\n"))
        finally:
            rc = proc.wait()
            with self._lock:
                self._running.discard(proc)
            log.flush()
        return rc

    def stop_all(self) -> None:
        """Stop every build (the CLI cancels its BuildKit session on SIGTERM) and refuse new ones."""
        with self._lock:
            self._stopped = True
            for proc in self._running:
                proc.terminate()
