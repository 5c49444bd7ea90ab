"""Benchmark: what the layer plan ships, and what zstd buys on a pull (README "Layers", issue 14).

Builds the product's runtime image on the local Debian base (matrix.yaml + overlays/local-debian.yaml)
twice over, in the layout before the layer plan (one pip layer: `layers: []`) and with matrix.yaml's
plan, each with its `tracking` extension, a one-pin update (pytest 8.3.5 → 8.3.4) and a second
variant (torch 2.5.1, the release before, on the same base and CUDA 12.4 wheel channel, locked from
the base's set: PyPI serves no other CUDA build of 2.6.0); and once more with zstd layers. Then, in
one run on one machine:

- bytes per change: the layers of the updated image the old one lacks (compressed, as the registry
  holds them);
- pull of an update: a host holding the old image pulls the updated one from a loopback registry;
- cold pull, gzip vs zstd: the whole image onto an engine holding nothing;
- registry storage: bytes the registry stores for base, + extension, + second variant, + update.

Method: every pull is timed from the request to the engine's reply ending (the image unpacked and
usable), on an engine whose images and build cache are removed first (for an update: all but the
old image); the registry is Debian's docker-registry on 127.0.0.1, plain HTTP (Docker treats
127.0.0.0/8 as an insecure registry by default), storage on the same disk. Each pull is repeated
(--repeat, default 3) with gzip and zstd alternating, and the median is reported with the range.
Builds are not timed here. Run as root on a host with scripts/engines' engines started:

    scripts/engines start docker28-containerd docker28-classic
    python benchmarks/layers.py --out benchmarks/results/layers-$(date +%F).json

It leaves no image, container, registry or build cache of its own behind; after a failure the
build engine keeps its images and build cache, so a rerun builds from the cache
(`scripts/engines purge` clears them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import docker
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "2.6.0-cu121-py3.11-runtime"
VARIANT = "2.5.1-cu121-py3.11-runtime"
BASE_MATRICES = ["matrix.yaml", "overlays/local-debian.yaml"]
LAYOUTS = {"one pip layer (before the plan)": "layers: []\n", "layer plan (matrix.yaml)": ""}


def engine_env(name: str) -> dict[str, str]:
    out = subprocess.run([str(ROOT / "scripts" / "engines"), "env", name], capture_output=True, text=True, check=True)
    return {**os.environ, **dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)}


class Registry:
    """docker-registry on 127.0.0.1, plain HTTP, storage in a folder of its own."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host, self.folder = f"127.0.0.1:{self.port}", folder
        folder.mkdir(parents=True)
        (folder / "config.yml").write_text(
            f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {folder / 'data'}}}}}\n"
            f"http: {{addr: '{self.host}'}}\n"
        )
        # Its log (warnings and errors only) stays beside the storage for a failed push to be read.
        self.log = (folder / "registry.log").open("wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(folder / "config.yml")], stderr=self.log)
        for _ in range(100):
            try:
                requests.get(f"http://{self.host}/v2/", timeout=1)
                return
            except requests.exceptions.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("the registry did not start")

    def stored(self) -> int:
        return sum(f.stat().st_size for f in (self.folder / "data").rglob("*") if f.is_file())

    def layers(self, repository: str, tag: str) -> list[tuple[str, int]]:
        accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
        body = requests.get(f"http://{self.host}/v2/{repository}/manifests/{tag}", headers={"Accept": accept}, timeout=30).json()
        return [(layer["digest"], int(layer["size"])) for layer in body["layers"]]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        log = (self.folder / "registry.log").read_text(errors="replace").strip()
        if log:
            print("registry log (warnings and errors):\n" + log[-4000:], flush=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def make_local_base(env: dict[str, str]) -> None:
    subprocess.run([str(ROOT / "scripts" / "make-local-base")], env=env, check=True, stdout=subprocess.DEVNULL)


def imagekit(env: dict[str, str], *args: str) -> None:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "imagekit", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"imagekit {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    print(f"  imagekit {args[0]} took {time.monotonic() - started:.0f} s", flush=True)


def empty(client: docker.DockerClient, keep: tuple[str, ...] = ()) -> None:
    """Remove every image but ``keep``, and the build cache: the engine holds nothing else (the
    local base too: it shares its layer with the pulled images; `make_local_base` restores it)."""
    for image in client.images.list(all=True):
        if not any(tag in keep for tag in image.tags):
            try:
                client.images.remove(image.id, force=True)
            except docker.errors.APIError:
                pass
    client.api.prune_builds()


def timed_pull(client: docker.DockerClient, ref: str) -> float:
    started = time.monotonic()
    for event in client.api.pull(ref, stream=True, decode=True):
        if "error" in event:
            raise RuntimeError(f"pull {ref}: {event['error']}")
    return time.monotonic() - started


def push(client: docker.DockerClient, repository: str, tag: str) -> None:
    """Push, once more on an error: distribution now and then answers a whole-blob PUT of a
    multi-GB layer with 500 (seen once in three runs); a second push sends only what is missing."""
    for attempt in (1, 2):
        errors = [event["error"] for event in client.api.push(repository, tag, stream=True, decode=True) if "error" in event]
        if not errors:
            return
        print(f"  push {repository}:{tag} (attempt {attempt}): {errors[0]}", flush=True)
    raise RuntimeError(f"push {repository}:{tag}: {errors[0]}")


def summary(times: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(times), 1),
        "min_s": round(min(times), 1),
        "max_s": round(max(times), 1),
        "runs": len(times),
    }


@contextmanager
def workspace() -> Any:
    # Inside the project: overlays and templates must lie in it (README "Security"); ignored by git.
    folder = ROOT / "benchmarks" / "work" / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def build_layout(env: dict[str, str], work: Path, name: str, plan: str, repo: str, zstd: bool = False) -> dict[str, list[str]]:
    """Lock and build, in one layout, the base image, its extension, the update and the second
    variant. Returns kind → the imagekit arguments that name it (matrices and lock)."""
    overlays = {
        "base": f"repository: {repo}\n{plan}" + ("publish: {compression: zstd}\n" if zstd else ""),
        "update": f'repository: {repo}-update\npackages: ["numpy==2.2.6", "pytest==8.3.4"]\n',
        "variant": f'repository: {repo}-variant\ntorch: {{version: "2.5.1", torchaudio: "2.5.1"}}\n',
    }
    kinds = {"base": ["base"]} if zstd else {"base": ["base"], "update": ["base", "update"], "variant": ["base", "variant"]}
    found = {}
    for kind, parts in kinds.items():
        files = []
        for part in parts:
            (work / f"{name}-{part}.yaml").write_text(overlays[part])
            files += ["--matrix", str(work / f"{name}-{part}.yaml")]
        lock = work / f"{name}-{kind}.lock"
        # From the committed lock: its pins are kept, only what an overlay changes is resolved again.
        shutil.copy(ROOT / "overlays" / "local-debian.lock", lock)
        if kind == "variant":
            # The variant is locked from the base's set, as a site adds a variant to a locked matrix:
            # uv keeps every pin the other torch release allows (the pure-Python ones).
            data = yaml.safe_load(lock.read_text())
            data["images"][VARIANT] = data["images"][IMAGE]
            lock.write_text(yaml.safe_dump(data, sort_keys=False, width=200))
        args = [*(w for m in BASE_MATRICES for w in ("--matrix", m)), *files, "--lock", str(lock)]
        only = "*-runtime*" if kind == "base" and not zstd else "*-runtime"
        print(f"{name}: {kind}", flush=True)
        imagekit(env, "lock", *args, "--only", only)
        imagekit(env, "build", *args, "--only", only, "--reports", str(work / "reports"), "--out", str(work / "build"))
        found[kind] = args
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--build-engine", default="docker28-containerd", help="must be bit-for-bit (containerd store): layers shared by digest"
    )
    parser.add_argument("--pull-engines", nargs="+", default=["docker28-classic", "docker28-containerd"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()

    build_env = engine_env(args.build_engine)
    build = docker.DockerClient(base_url=build_env["DOCKER_HOST"], timeout=3600)
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "engines": {
            name: docker.DockerClient(base_url=engine_env(name)["DOCKER_HOST"]).version()["Version"]
            for name in {args.build_engine, *args.pull_engines}
        },  # fmt: skip
        "layouts": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="imagekit-bench-"))
    with workspace() as work:
        for index, (layout, plan) in enumerate(LAYOUTS.items()):
            repo = f"imagekit-bench/pytorch-{index}"
            registry = Registry(tmp / f"registry-{index}")
            try:
                make_local_base(build_env)  # a cold pull before may have removed it
                build_layout(build_env, work, f"l{index}", plan, repo)
                sources = {
                    "base": f"{repo}:{IMAGE}",
                    "extension": f"{repo}:{IMAGE}-tracking",
                    "variant": f"{repo}-variant:{VARIANT}",
                    "update": f"{repo}-update:{IMAGE}",
                }
                storage, pushed = {}, {}
                for kind, source in sources.items():
                    # One repository, a tag per kind: the registry stores each blob once, whichever images share it.
                    target = f"{registry.host}/{repo}"
                    build.api.tag(source, target, f"{kind}")
                    push(build, target, kind)
                    pushed[kind] = f"{target}:{kind}"
                    storage[kind] = registry.stored()
                # The update: its layers the base lacks, compressed.
                base_blobs, update_blobs = registry.layers(repo, "base"), registry.layers(repo, "update")
                new_blobs = [(d, s) for d, s in update_blobs if d not in dict(base_blobs)]
                entry: dict[str, Any] = {
                    "layers": len(update_blobs),
                    "image_bytes_compressed": sum(s for _, s in update_blobs),
                    "update_new_layers": len(new_blobs),
                    "update_bytes_compressed": sum(s for _, s in new_blobs),
                    "registry_bytes": storage,
                    "pull_update": {},
                }
                results["layouts"][layout] = entry
                print(json.dumps(entry, indent=1), flush=True)
                # The images are in the registry now; their unpacked copies and build cache (~50 GB on
                # the containerd store) would leave the pulls short of disk.
                empty(build)
                for pull_engine in args.pull_engines:
                    client = docker.DockerClient(base_url=engine_env(pull_engine)["DOCKER_HOST"], timeout=3600)
                    times = []
                    for _ in range(args.repeat):
                        empty(client, keep=(pushed["base"],))
                        if not client.images.list(name=pushed["base"].rsplit(":", 1)[0]):
                            timed_pull(client, pushed["base"])
                        times.append(timed_pull(client, pushed["update"]))
                        client.images.remove(pushed["update"], force=False)
                    entry["pull_update"][pull_engine] = summary(times)
                    print(f"  update pull on {pull_engine}: {entry['pull_update'][pull_engine]}", flush=True)
                    empty(client)
                if index == len(LAYOUTS) - 1:
                    results["cold_pull"] = cold_pulls(build, build_env, work, registry, repo, pushed["base"], args)
            finally:
                registry.close()
            empty(build)  # not after a failure: a rerun builds from the cache
    shutil.rmtree(tmp, ignore_errors=True)
    for name in {args.build_engine, *args.pull_engines}:  # the engines get back the base the tests expect
        make_local_base(engine_env(name))
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def cold_pulls(
    build: docker.DockerClient, env: dict[str, str], work: Path, registry: Registry, repo: str, gzip_ref: str, args: Any
) -> dict:
    """The plan's base image, gzip and zstd, each pulled whole onto an empty engine, alternating."""
    zstd_repo = f"{repo}-zstd"
    make_local_base(env)
    build_layout(env, work, "zstd", "", zstd_repo, zstd=True)
    target = f"{registry.host}/{zstd_repo}"
    build.api.tag(f"{zstd_repo}:{IMAGE}", target, "base")
    push(build, target, "base")
    refs = {"gzip": gzip_ref, "zstd": f"{target}:base"}
    found: dict[str, Any] = {
        "bytes_compressed": {
            kind: sum(s for _, s in registry.layers(ref.split("/", 1)[1].rsplit(":", 1)[0], "base")) for kind, ref in refs.items()
        }
    }
    for pull_engine in args.pull_engines:
        client = docker.DockerClient(base_url=engine_env(pull_engine)["DOCKER_HOST"], timeout=3600)
        times: dict[str, list[float]] = {"gzip": [], "zstd": []}
        for run in range(args.repeat):
            for kind in ("gzip", "zstd") if run % 2 == 0 else ("zstd", "gzip"):
                empty(client)
                times[kind].append(timed_pull(client, refs[kind]))
        empty(client)
        found[pull_engine] = {kind: summary(t) for kind, t in times.items()}
        print(f"  cold pull on {pull_engine}: {found[pull_engine]}", flush=True)
    return found


if __name__ == "__main__":
    sys.exit(main())
