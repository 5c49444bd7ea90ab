"""Fakes of the adapters the stages receive (imagekit/stages/ports.py), for unit tests that run whole
commands in process: an engine holding images in memory, a BuildKit runner that "builds" by reading
the docker CLI's arguments, a registry, resolvers. Each implements what the stages call and keeps
a record of what they asked, so a test asserts on behaviour (what was built, in which order, what
was pushed) without an engine, a process or a network."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from imagekit.adapters.buildkit import Builder
from imagekit.adapters.docker_engine import ContainerResult
from imagekit.adapters.registry import ImageKey, Manifest, RawManifest
from imagekit.cli.common import Adapters
from imagekit.core.provenance import Provenance
from imagekit.errors import EngineError
from imagekit.stages.relock import Resolvers


def _digest(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass
class FakeRegistry:
    """Manifests by repository path and tag, as a containerd-store engine pushes them (the
    manifest's digest is the local image id)."""

    manifests: dict[tuple[str, str], Manifest] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # config digest → config
    reads: list[str] = field(default_factory=list)
    # The OCI side (evidence, promotion): manifests as bytes by (repository, tag or digest), blobs
    # by (repository, digest), and every cross-repository mount asked for.
    raw: dict[tuple[str, str], RawManifest] = field(default_factory=dict)
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)
    moved: int = 0

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        self.reads.append(f"{repository}:{reference}")
        return self.manifests.get((repository, reference))

    def raw_manifest(self, repository: str, reference: str) -> RawManifest | None:
        return self.raw.get((repository, reference))

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> str:
        for blob in [manifest.json()["config"], *manifest.json()["layers"]]:
            assert (repository, blob["digest"]) in self.blobs, f"{repository} lacks {blob['digest']}"
        self.raw[(repository, reference)] = self.raw[(repository, manifest.digest)] = manifest
        self.moved += len(manifest.body)
        return manifest.digest

    def blob(self, repository: str, digest: str, *, limit: int = 0) -> bytes:
        return self.blobs[(repository, digest)]

    def has_blob(self, repository: str, digest: str) -> bool:
        return (repository, digest) in self.blobs

    def put_blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[(repository, digest)] = data
        self.moved += len(data)
        return digest

    def mount_blob(self, repository: str, digest: str, source: str) -> None:
        self.blobs[(repository, digest)] = self.blobs[(source, digest)]
        self.mounts.append(f"{source} → {repository}: {digest[:19]}")

    def config(self, repository: str, digest: str) -> dict[str, Any]:
        return self.configs[digest]

    def close(self) -> None:
        pass


@dataclass
class FakeEngine:
    """An engine with the containerd image store, in memory: image attributes by every name they
    go by (tag, id, name@digest)."""

    registry: FakeRegistry = field(default_factory=FakeRegistry)
    names: dict[str, dict[str, Any]] = field(default_factory=dict)
    suite_fails: set[str] = field(default_factory=set)  # image ids whose smoke suite fails
    pushed: list[str] = field(default_factory=list)  # repository:tag, in order
    pulled: list[str] = field(default_factory=list)  # name@digest, in order
    store = "containerd"

    def version(self) -> dict[str, Any]:
        return {"Version": "28.5.2", "ApiVersion": "1.51"}

    def info(self) -> dict[str, Any]:
        return {"ID": "fake-engine", "Driver": "overlayfs", "DockerRootDir": "/var/lib/docker"}

    def describe_store(self) -> str:
        return "containerd image store (fake)"

    def add(self, names: list[str], layers: list[str], labels: dict[str, str]) -> str:
        image_id = _digest(*layers, *sorted(f"{k}={v}" for k, v in labels.items()))
        attrs = {"Id": image_id, "RootFS": {"Layers": layers}, "Config": {"Labels": labels}, "Created": "2026-12-07T00:00:00Z"}
        for name in [*names, image_id]:
            self.names[name] = attrs
        return image_id

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        return self.names.get(ref)

    def key(self, ref: str) -> ImageKey | None:
        attrs = self.inspect_image(ref)
        return ImageKey(attrs["Id"], "manifest") if attrs else None

    def resolve(self, ref: str, *, pull: bool) -> str | None:
        """Every base exists in the (imagined) registry: its pin is its name at a digest of its name."""
        pinned = f"{ref.split(':')[0]}@{_digest(ref)}"
        if pull and pinned not in self.names:
            self.add([ref, pinned], [_digest("base layer of", ref)], {})
        return pinned

    def ensure(self, ref: str, *, what: str = "image", tip: str | None = None) -> dict[str, Any]:
        attrs = self.inspect_image(ref)
        if attrs is None:
            raise EngineError(f"no {what} {ref}", tip=tip)
        return attrs

    def base_reference(self, base_image: str, pin: str) -> str:
        return pin

    def parent_reference(self, content_tag: str) -> str:
        return f"{content_tag}@{self.names[content_tag]['Id']}"

    def layers(self, ref: str) -> list[str]:
        return list(self.names[ref]["RootFS"]["Layers"])

    def size(self, ref: str) -> int:
        return 1_000_000 * len(self.layers(ref))

    def history(self, ref: str) -> list[tuple[int, str]]:
        return [(1_000_000, f"RUN layer {i}") for i, _ in enumerate(self.layers(ref))]

    def read_file(self, ref: str, path: str) -> bytes | None:
        return None  # no package manifest: the build records sizes alone

    def tag(self, source: str, target: str) -> None:
        self.names[target] = self.names[source]

    def remove_image(self, ref: str) -> None:
        self.names.pop(ref, None)

    def run_container(
        self, image: str, command: list[str], *, volumes: dict[str, dict[str, str]], environment: dict[str, str], gpus: Any, timeout: float,
        mem_limit: str | None = None, cpus: float | None = None, log: IO[str] | None = None, user: str | None = None,
    ) -> ContainerResult:  # fmt: skip
        """The smoke suite "runs": it writes a one-test JUnit report where pytest would."""
        image_id = self.names[image]["Config"]["Labels"]["io.imagekit.image-id"]
        out = next(Path(host) for host, mount in volumes.items() if mount["bind"] == "/imagekit/out")
        failed = image_id in self.suite_fails
        suite = ET.Element("testsuite", name=image_id, tests="1", failures=str(int(failed)), errors="0", skipped="0", time="0.1")
        case = ET.SubElement(suite, "testcase", name="test_torch_imports", classname="test_environment", time="0.1")
        if failed:
            ET.SubElement(case, "failure", message="torch does not import")
        root = ET.Element("testsuites")
        root.append(suite)
        (out / "junit.xml").write_text(ET.tostring(root, encoding="unicode"))
        return ContainerResult(exit_code=1 if failed else 0, logs="", timed_out=False)

    def push(self, repository: str, tag: str, auth: dict[str, str] | None) -> str:
        attrs = self.names[f"{repository}:{tag}"]
        _, path = repository.split("/", 1)
        layers = attrs["RootFS"]["Layers"]
        # Each layer gzip-compressed to half its size: a blob of its own digest.
        blobs = tuple((_digest("gzip", diff_id), 500_000, "application/vnd.oci.image.layer.v1.tar+gzip") for diff_id in layers)
        config = _digest("config", attrs["Id"])
        self.registry.configs[config] = {"rootfs": {"type": "layers", "diff_ids": list(layers)}, "history": []}
        self.registry.manifests[(path, tag)] = Manifest(attrs["Id"], config, 500_000 * len(layers), blobs)
        # The same manifest as bytes, where test results are attached to it (its digest is the
        # image id, as on the containerd store; the bytes here only stand for it).
        body = json.dumps({"config": {"digest": config}, "layers": [{"digest": b} for b, _, _ in blobs]}).encode()
        raw = RawManifest(str(attrs["Id"]), "application/vnd.oci.image.manifest.v1+json", body)
        self.registry.raw[(path, tag)] = self.registry.raw[(path, raw.digest)] = raw
        for blob in [config, *(b for b, _, _ in blobs)]:
            self.registry.blobs[(path, blob)] = b""
        self.pushed.append(f"{repository}:{tag}")
        return str(attrs["Id"])

    def pull(self, ref: str, auth: dict[str, str] | None) -> dict[str, Any]:
        """A pull by digest (name@sha256:…) of an image this engine pushed; it goes by that name after."""
        digest = ref.rsplit("@", 1)[1]
        attrs = next((a for a in self.names.values() if a["Id"] == digest), None)
        if attrs is None:
            raise EngineError(f"cannot pull {ref}: not in the registry")
        self.names[ref] = attrs
        self.pulled.append(ref)
        return attrs

    def load(self, tarball: Path, name: str) -> None:
        raise AssertionError("a fake builder writes no OCI archive")

    def build_cache_ids(self) -> set[str]:
        return set()

    def drop_build_cache(self, since: set[str]) -> int:
        return 0

    @contextmanager
    def exported(self, ref: str) -> Any:
        raise AssertionError("nothing exports here")
        yield


@dataclass
class FakeBuilds:
    """A BuildKit runner that reads the docker CLI's arguments and puts the image they describe into
    the engine: its layers are its base's (or parent's) and one of its own, made of its build
    context. The reproducibility probe's builds fail, so the level is "file tree"."""

    engine: FakeEngine
    fail: set[str] = field(default_factory=set)  # image ids whose build fails
    built: list[str] = field(default_factory=list)  # image ids, in the order they were built

    def run(self, argv: list[str], env: dict[str, str], log: IO[str], on_line: Any = None) -> int:
        def values(flag: str) -> list[str]:
            return [argv[i + 1] for i, word in enumerate(argv) if word == flag]

        tags = values("--tag")
        if not tags or tags[0].startswith("imagekit-probe-"):
            log.write("ERROR: the fake builder makes no probe images\n")
            return 1
        context = Path(argv[-1])
        # The matrix's labels are the Dockerfile's LABEL step; the build-time ones are arguments.
        labels = dict(re.findall(r'([a-z][a-z0-9.-]+)="([^"]*)"', (context / "Dockerfile").read_text().split("\nLABEL ", 1)[1]))
        labels |= dict(v.split("=", 1) for v in values("--label"))
        image_id = labels["io.imagekit.image-id"]
        if image_id in self.fail:
            log.write(f"ERROR: failed to solve: {image_id} does not build\n")
            return 1
        args = dict(v.split("=", 1) for v in values("--build-arg"))
        below = self._resolve(args.get("IMAGEKIT_PARENT") or args["IMAGEKIT_BASE"])
        own = _digest(*(f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in sorted(context.iterdir())))
        self.engine.add(tags, [*below["RootFS"]["Layers"], own], labels)
        self.built.append(image_id)
        return 0

    def stop_all(self) -> None:
        pass

    def _resolve(self, ref: str) -> dict[str, Any]:
        """As BuildKit on the containerd store: `tag@digest` is the tagged image, checked against the digest."""
        if ref in self.engine.names:
            return self.engine.names[ref]
        name, _, digest = ref.partition("@")
        attrs = self.engine.names[name]
        assert attrs["Id"] == digest, f"{name} is not {digest}"
        return attrs


PINS = "torch==2.6.0 \\\n    --hash=sha256:" + "b" * 64 + "\n"


def adapters(engine: FakeEngine, builds: FakeBuilds, resolved: list[str] | None = None) -> Adapters:
    """Adapters for a whole command in process: ``resolved`` records what pip was asked to resolve."""

    def pip(requirements: list[str], *, python: str, index_url: str, constraints: list[str] | None = None, **_: Any) -> str:
        if resolved is not None:
            resolved.append(" ".join(requirements))
        return PINS

    def no_probe(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
        return None  # no host tool (nvidia-smi) is there

    return Adapters(
        engine=lambda: engine,
        builder=lambda probe: Builder("/fake/docker", "buildx", "28.5.2", "0.29.1"),
        runner=lambda: builds,
        registry=lambda host, **_: engine.registry,
        registry_auth=lambda host: None,
        resolvers=Resolvers(pip=pip, apt=lambda *args, **kwargs: {}),
        provenance=lambda folder, source: Provenance("0" * 40, source, "2026-12-07T00:00:00Z", 1796601600),
        probe=no_probe,
    )
