"""The Docker Engine through its SDK: images, containers, pushes, loads (builds go through
`buildkit.py`, the CLI).

Two image stores behave differently (facts.md "Current Docker engines"), and everything here that
depends on it asks `Engine.store`:
- classic (graph driver, overlay2): an image id is the digest of the image's config; RepoDigests
  exist only for images pulled from or pushed to a registry.
- containerd (the default of fresh Engine 29 installs): an image id is the digest of its manifest
  (or index), and every named image lists a RepoDigest, registry or not; BuildKit resolves a
  `name:tag@digest` reference from the store and checks the digest, but goes to the registry for a
  bare `name@digest`.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import docker
import docker.errors
import requests.exceptions
from docker.types import DeviceRequest

from imagekit.adapters.registry import ImageKey
from imagekit.errors import EngineError, RegistryError

ENGINE_TIP = "start the Docker engine (e.g. `dockerd &` or `systemctl start docker`) or point DOCKER_HOST at one"
CONTAINER_LABEL = "io.imagekit.role"
Store = Literal["classic", "containerd"]
CLASSIC: Store = "classic"
CONTAINERD: Store = "containerd"


@dataclass(frozen=True)
class ContainerResult:
    exit_code: int | None  # None: it was stopped at the timeout
    logs: str
    timed_out: bool


BASE_TIP = "set base_image in an overlay to an image this host has or can pull (a mirror)"


def _without_digest(ref: str) -> str:
    return ref.split("@", 1)[0]


def _repository(ref: str) -> str:
    """`host:5000/ml/x:tag@sha256:…` → `host:5000/ml/x`."""
    name = _without_digest(ref)
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def pushed_digest(event: dict[str, Any]) -> str | None:
    """The manifest digest in one event of a push's reply stream. The classic store sends it as
    `aux.Digest`; the containerd store only in the closing status line, `TAG: digest: sha256:… size: N`."""
    aux = (event.get("aux") or {}).get("Digest")
    if aux:
        return str(aux)
    status = str(event.get("status") or "")
    _, found, rest = status.partition(": digest: ")
    return rest.split()[0] if found and rest.startswith("sha256:") else None


@dataclass
class Engine:
    _client: Any = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

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

    @property
    def store(self) -> Store:
        """CONTAINERD when the engine keeps images in containerd (its snapshotter shows as the
        driver type), else CLASSIC."""
        if self._store is None:
            status = dict(tuple(pair) for pair in self.info().get("DriverStatus") or [] if len(pair) == 2)
            self._store = CONTAINERD if "containerd.snapshotter" in str(status.get("driver-type", "")) else CLASSIC
        return self._store

    def describe_store(self) -> str:
        driver = self.info().get("Driver")
        if self.store == CONTAINERD:
            return f"containerd image store ({driver} snapshotter)"
        return f"classic image store ({driver} graph driver)"

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        try:
            return self.client.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code in (400, 404):  # 400: a reference the store cannot even parse as one of its names
                return None
            raise EngineError(f"cannot inspect {ref}: {exc.explanation}") from None

    def key(self, ref: str) -> ImageKey | None:
        """What ``ref``'s image id is the digest of on this engine, for comparing with a registry."""
        attrs = self.inspect_image(ref)
        if attrs is None:
            return None
        return ImageKey(attrs["Id"], "manifest" if self.store == CONTAINERD else "config")

    def registry_digest(self, ref: str, attrs: dict[str, Any]) -> str | None:
        """``name@sha256:…`` when ``ref``'s image came from a registry, else None (a local image).
        The classic store records a registry digest only for pulled or pushed images. The containerd
        store lists one for every image, so there the registry is asked what it serves for ``ref``
        (the engine's own resolver, with its mirrors, TLS and credentials): a registry that cannot
        be reached or does not know the name makes it a local image."""
        name = _repository(ref)
        if self.store == CLASSIC:
            for digest in attrs.get("RepoDigests") or []:
                if digest.split("@", 1)[0] in (name, f"docker.io/{name}", f"docker.io/library/{name}"):
                    return digest
            return None
        if "@" in ref:
            return ref
        try:
            served = self.client.api.inspect_distribution(ref)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return None
        digest = (served.get("Descriptor") or {}).get("digest")
        return f"{name}@{digest}" if digest else None

    def resolve(self, ref: str, *, pull: bool) -> str | None:
        """The immutable reference behind ``ref``: its registry digest (name@sha256:…) when it came
        from a registry, else its local image id. Pulls it first when absent and ``pull`` is set
        (or, on the containerd store, when the registry serves other content under its tag).
        None when it is absent (and could not be pulled)."""
        attrs = self.inspect_image(ref)
        if attrs is None and pull:
            attrs = self.ensure(ref, what="base image", tip=BASE_TIP)
        if attrs is None:
            return None
        digest = self.registry_digest(ref, attrs)
        if digest is None:
            return str(attrs["Id"])
        if pull and self.inspect_image(digest) is None:
            self.ensure(digest, what="base image", tip=BASE_TIP)
        return digest

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

    def pull(self, ref: str, auth: dict[str, str] | None) -> dict[str, Any]:
        """Pull ``ref`` with ``auth`` (None: the engine's own credentials); its attributes."""
        try:
            self.client.images.pull(ref, auth_config=auth)
        except (docker.errors.APIError, docker.errors.ImageNotFound, requests.exceptions.RequestException) as exc:
            raise EngineError(
                f"cannot pull {ref}: {getattr(exc, 'explanation', None) or exc}",
                tip="check the registry and its credentials (`docker login`)",
            ) from None
        attrs = self.inspect_image(ref)
        if attrs is None:
            raise EngineError(f"{ref} was pulled but the engine does not show it")
        return attrs

    def base_reference(self, base_image: str, pin: str) -> str:
        """What `FROM` gets for a base pinned as ``pin`` (checked by `stages.identity.locked_base` already)."""
        if self.store == CONTAINERD:
            # The store finds `tag@digest` itself and refuses other content; a bare `name@digest`
            # would send BuildKit to the registry, which a local base is not in.
            return f"{_without_digest(base_image)}@{pin.rsplit('@', 1)[-1]}"
        # Classic: BuildKit finds a pulled image by its registry digest; a local base has none, so
        # its tag, which `stages.identity.locked_base` checked against the locked image id.
        return pin if "@" in pin else base_image

    def parent_reference(self, content_tag: str) -> str:
        """What an extension's `FROM` gets for its parent: the parent's exact content. Containerd
        store: `content-tag@image-id`, checked by BuildKit itself. Classic: the registry digest once
        the parent was pushed or pulled, else its content tag (checked before and after the build)."""
        attrs = self.inspect_image(content_tag)
        if attrs is None:
            return content_tag
        if self.store == CONTAINERD:
            return f"{content_tag}@{attrs['Id']}"
        digests = sorted(attrs.get("RepoDigests") or [])
        return digests[0] if digests else content_tag

    def layers(self, ref: str) -> list[str]:
        attrs = self.inspect_image(ref)
        return list((attrs or {}).get("RootFS", {}).get("Layers") or [])

    def size(self, ref: str) -> int:
        """Bytes the image takes unpacked: the sum of its layers, as `docker history` lists them.
        Not the inspected `Size`, which on the containerd store counts compressed content instead."""
        return sum(size for size, _ in self.history(ref))

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
                digest = pushed_digest(chunk) or digest
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise RegistryError(f"push of {repository}:{tag} failed: {exc}", transient=True) from None
        if digest is None:
            raise RegistryError(f"push of {repository}:{tag} reported no digest", transient=True)
        return digest

    def load(self, tarball: Path, name: str) -> None:
        """Load an OCI archive whose image is named ``name`` (Builder.command with oci_tarball).
        The containerd store keeps the archive's manifest as it is: the image id is its digest."""
        try:
            with tarball.open("rb") as fh:
                events = list(self.client.api.load_image(fh, quiet=True))
        except (docker.errors.APIError, requests.exceptions.RequestException, OSError) as exc:
            raise EngineError(f"cannot load {tarball}: {exc}") from None
        errors = [
            str(e.get("error") or (e.get("errorDetail") or {}).get("message")) for e in events if e.get("error") or e.get("errorDetail")
        ]
        if errors or self.inspect_image(name) is None:
            raise EngineError(f"loading {tarball} did not give {name}: {'; '.join(errors) or 'no such image afterwards'}")

    def remove_image(self, ref: str) -> None:
        try:
            self.client.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass

    def build_cache(self) -> list[dict[str, Any]]:
        """BuildKit's cache records on this engine, as `docker system df -v` lists them."""
        try:
            return self.client.df().get("BuildCache") or []
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot list the build cache: {exc.explanation}") from None

    def build_cache_ids(self) -> set[str]:
        """The ids of BuildKit's cache records on this engine."""
        return {r["ID"] for r in self.build_cache()}

    def drop_build_cache(self, since: set[str]) -> int:
        """Prune the cache records made after ``since`` was read that no image and no running build
        holds (a rebuild whose image is gone); bytes reclaimed. A build's layers are a chain of
        records and BuildKit prunes a record only once its children are gone: leaves go first,
        pass after pass."""
        doomed = {r["ID"] for r in self.build_cache() if r["ID"] not in since and not r.get("InUse") and not r.get("Shared")}
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
                container.remove(force=True, v=True)  # and its anonymous volumes (an image VOLUME, e.g. /data)
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
