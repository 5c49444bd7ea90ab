"""The one module that talks to Docker: the CLI for BuildKit builds, the SDK for everything else.

The Docker SDK for Python cannot build with BuildKit (docker/docker-py#2230), and the templates need
BuildKit's cache and secret mounts, so builds go through the docker CLI: `docker buildx build
--load` where the buildx plugin exists, else `DOCKER_BUILDKIT=1 docker build` on a CLI older than
23.0 (newer CLIs refuse that without buildx). Images and containers go through the SDK.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import requests.exceptions
from docker.types import DeviceRequest

from .errors import ConfigurationError, EngineError, RegistryError
from .facts import version_tuple

ENGINE_TIP = "start the Docker engine (e.g. `dockerd &` or `systemctl start docker`) or point DOCKER_HOST at one"
BUILDER_TIP = (
    "install the buildx plugin (Debian/Ubuntu: `apt-get install docker-buildx` or docker-buildx-plugin), "
    "or put a docker CLI older than 23.0 first on PATH (Debian's docker.io installs one as /usr/bin/docker); "
    "IMAGEKIT_DOCKER=/path/to/docker picks a CLI explicitly"
)
CONTAINER_LABEL = "io.imagekit.role"


# ---------------------------------------------------------------------------------------------
# BuildKit through the CLI


@dataclass(frozen=True)
class Builder:
    docker: str  # path of the docker CLI
    kind: str  # "buildx" or "buildkit"
    client_version: str

    def describe(self) -> str:
        if self.kind == "buildx":
            return f"docker buildx build --load ({self.docker}, CLI {self.client_version})"
        return f"DOCKER_BUILDKIT=1 docker build ({self.docker}, CLI {self.client_version})"

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
        rewrite_timestamp: bool = False,
    ) -> tuple[list[str], dict[str, str]]:
        """The build command. ``source_date_epoch`` (BuildKit >= 0.11) fixes the image's times;
        ``rewrite_timestamp`` (BuildKit >= 0.13, buildx) also clamps file times in new layers to
        it, for equal digests (imagekit/reproducibility.py)."""
        if self.kind == "buildx":
            load = ["--output", "type=docker,rewrite-timestamp=true"] if rewrite_timestamp else ["--load"]
            argv = [self.docker, "buildx", "build", *load]
        else:
            argv = [self.docker, "build"]
        argv += ["--progress=plain", "--file", str(context / "Dockerfile")]
        if no_cache:
            argv.append("--no-cache")
        for tag in tags:
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


def _cli_version(docker_cli: str) -> str | None:
    try:
        out = subprocess.run([docker_cli, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    # The client version prints even when the engine is unreachable (rc 1); take the first line.
    first = out.stdout.strip().splitlines()[:1]
    return first[0] if first else None


def _has_buildx(docker_cli: str) -> bool:
    try:
        out = subprocess.run([docker_cli, "buildx", "version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def _major(version: str) -> int:
    try:
        return version_tuple(version.split("+")[0].split("-")[0])[0]
    except ValueError:
        return 0


def _docker_clis() -> list[str]:
    """Every docker CLI on PATH, in PATH order, each real file once (IMAGEKIT_DOCKER alone if set)."""
    explicit = os.environ.get("IMAGEKIT_DOCKER")
    if explicit:
        return [explicit]
    seen: set[str] = set()
    found = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / "docker"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            real = str(candidate.resolve())
            if real not in seen:
                seen.add(real)
                found.append(str(candidate))
    return found


def find_builder() -> Builder:
    """The first docker CLI on PATH that can drive BuildKit; a newer CLI without buildx that hides
    an older one (common on hosts with Debian's docker.io) is passed over, not fatal."""
    clis = _docker_clis()
    if not clis:
        raise EngineError("no docker CLI found on PATH", tip=BUILDER_TIP)
    refused = []
    for cli in clis:
        version = _cli_version(cli)
        if version is None:
            refused.append(f"{cli} (does not run)")
            continue
        if _has_buildx(cli):
            return Builder(cli, "buildx", version)
        if _major(version) < 23:
            return Builder(cli, "buildkit", version)
        refused.append(f"{cli} (CLI {version}, no buildx plugin)")
    raise EngineError("no docker CLI here can build with BuildKit: " + "; ".join(refused), tip=BUILDER_TIP)


class BuildProcesses:
    """The docker CLI builds under way, so an interrupt can stop them rather than wait for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self._stopped = False

    def start(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        with self._lock:
            if self._stopped:
                raise KeyboardInterrupt
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
            self._running.add(proc)
            return proc

    def done(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            self._running.discard(proc)

    def stop_all(self) -> None:
        """Stop every build (the CLI cancels its BuildKit session on SIGTERM) and refuse new ones."""
        with self._lock:
            self._stopped = True
            for proc in self._running:
                proc.terminate()


def run_build(argv: list[str], env: dict[str, str], log: IO[str], procs: BuildProcesses, on_line: Any = None) -> int:
    """Run a build, streaming its output into ``log`` (and each line to ``on_line``)."""
    proc = procs.start(argv, env)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            log.write(line)
            if on_line:
                on_line(line.rstrip("\n"))
    finally:
        rc = proc.wait()
        procs.done(proc)
        log.flush()
    return rc


# ---------------------------------------------------------------------------------------------
# Images and containers through the SDK


@dataclass(frozen=True)
class ContainerResult:
    exit_code: int | None  # None: it was stopped at the timeout
    logs: str
    timed_out: bool


@dataclass
class Engine:
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            # A socket path that does not exist: say so without connecting (docker-py leaks the
            # socket of a failed Unix connect).
            host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
            if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
                raise EngineError(f"cannot reach the Docker engine: no socket at {host.removeprefix('unix://')}", tip=ENGINE_TIP)
            client = None
            try:
                client = docker.from_env(timeout=120)
                client.ping()
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                if client is not None:
                    client.close()  # else its connection pool leaks until garbage collection
                raise EngineError(f"cannot reach the Docker engine: {exc}", tip=ENGINE_TIP) from None
            self._client = client
        return self._client

    def version(self) -> dict[str, Any]:
        return self.client.version()

    def info(self) -> dict[str, Any]:
        return self.client.info()

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        try:
            return self.client.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code == 404:
                return None
            raise EngineError(f"cannot inspect {ref}: {exc.explanation}") from None

    def resolve(self, ref: str, *, pull: bool) -> str | None:
        """The immutable reference behind ``ref``: its registry digest (name@sha256:…) when it came
        from a registry, else its local image id. Pulls it first when absent and ``pull`` is set.
        None when it is absent (and could not be pulled)."""
        attrs = self.inspect_image(ref)
        if attrs is None and pull:
            attrs = self.ensure(ref, what="base image", tip="set base_image in an overlay to an image this host has or can pull (a mirror)")
        if attrs is None:
            return None
        repo = ref.rsplit("@", 1)[0]
        name = repo if ":" not in repo.rsplit("/", 1)[-1] else repo.rsplit(":", 1)[0]
        for digest in attrs.get("RepoDigests") or []:
            if digest.split("@", 1)[0] in (name, f"docker.io/{name}", f"docker.io/library/{name}"):
                return digest
        return attrs["Id"]

    def ensure(self, ref: str, *, what: str = "image", tip: str | None = None) -> dict[str, Any]:
        """``ref``'s attributes, pulled first when it is not on this engine."""
        attrs = self.inspect_image(ref)
        if attrs is None:
            try:
                self.client.images.pull(ref)
            except (docker.errors.APIError, docker.errors.ImageNotFound) as exc:
                raise EngineError(f"{what} {ref} is not on this engine and cannot be pulled: {exc.explanation}", tip=tip) from None
            attrs = self.inspect_image(ref)
        if attrs is None:
            raise EngineError(f"{what} {ref} was pulled but the engine does not show it", tip=tip)
        return attrs

    def locked_base(self, ref: str, locked: str | None, *, pull: bool) -> str | None:
        """The base pinned in the lock (``name@sha256:…`` or a local image id), once it is on this
        engine (pulled by digest when ``pull``); None when absent. A local base whose tag now names
        another image is an error: it is not the base that was locked."""
        if locked is None:
            raise ConfigurationError(f"{ref} has no pin in the lock file", tip="run `imagekit lock`")
        if "@" not in locked:
            attrs = self.inspect_image(ref)
            if attrs is not None and attrs["Id"] != locked:
                raise EngineError(
                    f"the local base {ref} is image {attrs['Id'][:19]}, but the lock pins {locked[:19]}",
                    tip="a local base is made per host: run `imagekit lock` to pin this host's (or restore the locked one)",
                )
            return locked if attrs is not None else None
        if self.inspect_image(locked) is None:
            if not pull:
                return None
            self.resolve(locked, pull=True)
        return locked

    def pinned(self, ref: str) -> str:
        """``ref`` by digest (name@sha256:…) when the image has a registry digest, else ``ref``.
        A local build has no registry digest until it is pushed or pulled."""
        attrs = self.inspect_image(ref)
        digests = sorted((attrs or {}).get("RepoDigests") or [])
        return digests[0] if digests else ref

    def layers(self, ref: str) -> list[str]:
        attrs = self.inspect_image(ref)
        return list((attrs or {}).get("RootFS", {}).get("Layers") or [])

    def tag(self, source: str, target: str) -> None:
        repository, tag = target.rsplit(":", 1)
        self.client.api.tag(source, repository, tag)

    def push(self, repository: str, tag: str, auth: dict[str, str] | None) -> str:
        """Push ``repository:tag``; the digest the registry stored. docker-py's push does not raise
        when the reply stream carries an error (docker/docker-py#3161, #3277): read it and raise."""
        digest = None
        try:
            for chunk in self.client.api.push(repository, tag, stream=True, decode=True, auth_config=auth):
                error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
                if error:
                    denied = any(word in error.lower() for word in ("unauthorized", "denied", "authentication required"))
                    raise RegistryError(f"push of {repository}:{tag} failed: {error}", transient=not denied)
                digest = (chunk.get("aux") or {}).get("Digest") or digest
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise RegistryError(f"push of {repository}:{tag} failed: {exc}", transient=True) from None
        if digest is None:
            raise RegistryError(f"push of {repository}:{tag} reported no digest", transient=True)
        return digest

    def remove_image(self, ref: str) -> None:
        try:
            self.client.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass

    def _build_cache(self) -> list[dict[str, Any]]:
        try:
            return self.client.df().get("BuildCache") or []
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot list the build cache: {exc.explanation}") from None

    def build_cache_ids(self) -> set[str]:
        """The ids of BuildKit's cache records on this engine."""
        return {r["ID"] for r in self._build_cache()}

    def drop_build_cache(self, since: set[str]) -> int:
        """Prune the cache records made after ``since`` was read that no image and no running build
        holds (a rebuild whose image is gone); bytes reclaimed. A build's layers are a chain of
        records and BuildKit prunes a record only once its children are gone: leaves go first,
        pass after pass."""
        doomed = {r["ID"] for r in self._build_cache() if r["ID"] not in since and not r.get("InUse") and not r.get("Shared")}
        reclaimed = 0
        try:
            while doomed:
                pruned = set()
                for record_id in sorted(doomed):
                    # The engine matches the id filter as a pattern; record ids are plain base32.
                    answer = self.client.api.prune_builds(filters={"id": [record_id]})
                    reclaimed += int(answer.get("SpaceReclaimed") or 0)
                    pruned |= set(answer.get("CachesDeleted") or []) & doomed
                if not pruned:
                    break
                doomed -= pruned
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot prune the build cache: {exc.explanation}", tip="`docker builder prune` frees it") from None
        return reclaimed

    def read_file(self, ref: str, path: str) -> bytes | None:
        """The bytes of file ``path`` in image ``ref`` (from a container created, never started,
        and removed afterwards); None when the image has no such file."""
        with self._container(image=ref, command=["/"], labels={CONTAINER_LABEL: "read"}) as container:
            try:
                chunks, _ = container.get_archive(path)
            except docker.errors.NotFound:
                return None
            with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as tar:
                for member in tar:
                    fh = tar.extractfile(member) if member.isfile() else None
                    return fh.read() if fh else None
        return None

    def history(self, ref: str) -> list[tuple[int, str]]:
        """(size in bytes, the instruction that made it) of each layer of ``ref``, oldest first."""
        return [(int(h.get("Size") or 0), str(h.get("CreatedBy") or "")) for h in reversed(self.client.api.history(ref))]

    @contextmanager
    def exported(self, ref: str) -> Iterator[IO[bytes]]:
        """The file tree of image ``ref`` as a tar stream (`docker export` of a container created,
        never started, from it and removed afterwards)."""
        with self._container(image=ref, command=["/"], labels={CONTAINER_LABEL: "export"}) as container:
            yield _ChunkReader(container.export(chunk_size=1 << 20))

    @contextmanager
    def _container(self, **kwargs: Any) -> Iterator[Any]:
        container = self.client.containers.create(**kwargs)
        try:
            yield container
        finally:
            # Whatever happened (failure, timeout, Ctrl-C): no container is left behind.
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass

    def run_container(
        self,
        image: str,
        command: list[str],
        *,
        volumes: dict[str, dict[str, str]],
        environment: dict[str, str],
        gpus: DeviceRequest | None,
        timeout: float,
        mem_limit: str | None = None,
        cpus: float | None = None,
        log: IO[str] | None = None,
        user: str | None = None,
    ) -> ContainerResult:
        kwargs: dict[str, Any] = {
            "image": image,
            "user": user,
            "command": command,
            "volumes": volumes,
            "environment": environment,
            "labels": {CONTAINER_LABEL: "smoke"},
            "device_requests": [gpus] if gpus else None,
            "mem_limit": mem_limit,
            "nano_cpus": int(cpus * 1e9) if cpus else None,
            "shm_size": "1g",  # DataLoader workers share tensors through /dev/shm; Docker's 64 MB is too small
        }
        try:
            with self._container(**{k: v for k, v in kwargs.items() if v is not None}) as container:
                container.start()
                timed_out = False
                exit_code: int | None = None
                try:
                    exit_code = container.wait(timeout=timeout)["StatusCode"]
                except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                    timed_out = True
                    container.kill()
                logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
                if log is not None:
                    log.write(logs)
                    log.flush()
                return ContainerResult(exit_code=exit_code, logs=logs, timed_out=timed_out)
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot run {image}: {exc.explanation}") from None


def gpu_request(spec: str) -> DeviceRequest | None:
    """`--gpus` value (already resolved from `auto`) → the SDK's device request."""
    if spec == "none":
        return None
    if spec == "all":
        return DeviceRequest(count=-1, capabilities=[["gpu"]])
    ids = spec.removeprefix("device=").split(",")
    return DeviceRequest(device_ids=ids, capabilities=[["gpu"]])


def nvidia_runtime_present(info: dict[str, Any]) -> bool:
    """Whether `--gpus` can work: the engine knows the nvidia runtime, or the container toolkit's
    hook that dockerd calls for device requests is installed."""
    return "nvidia" in (info.get("Runtimes") or {}) or shutil.which("nvidia-container-runtime-hook") is not None


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (docker-py streams exports that way)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n], self._pending = self._pending[:n], self._pending[n:]
        return n
