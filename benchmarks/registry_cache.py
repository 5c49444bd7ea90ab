"""Benchmark: a builder with an empty cache that imports BuildKit's registry cache, against a cold
build of the same image (README "Staging, runner classes and promotion", issue 15). Goal: at most
half the cold time.

The product's runtime image on the local Debian base (matrix.yaml + overlays/local-debian.yaml, the
committed lock) is built on Engine 28.5 with the containerd image store (the store whose builder
exports a registry cache). First a seed build writes the cache to a loopback registry
(`imagekit build --cache-registry`); then, `--repeat` times (default 2), alternating:

- cold: the engine emptied (every image but the local base, the build cache, pip's cache mount),
  `imagekit build`;
- from the registry cache: the engine emptied the same way, `imagekit build --cache-registry`.

Method: each build is timed from the command's start to its end (the image loaded and tagged; the
local base is recreated before each and is not timed); bytes from PyPI are the sizes pip prints for
each wheel it downloads ("Downloading … (363.4 MB)"; a wheel from pip's cache prints "Using
cached"), the steps BuildKit took from a cache are its `CACHED` lines, and each build's five slowest
BuildKit steps (`#N DONE 12.3s`) say where its time went (the export, the pip steps, the cache import). The registry is Debian's
docker-registry on 127.0.0.1, plain HTTP, on the same disk. Medians over the repeats, with the
range. Run as root with the engine started:

    scripts/engines start docker28-containerd
    python benchmarks/registry_cache.py --out benchmarks/results/registry-cache-$(date +%F).json

It leaves no image, container, registry or build cache of its own behind.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layers import BASE_MATRICES, IMAGE, ROOT, Registry, empty, engine_env, make_local_base, summary, workspace  # noqa: E402

ENGINE = "docker28-containerd"
LOCAL_BASE = "imagekit-local/debian-python:bookworm-py3.11"  # scripts/make-local-base, overlays/local-debian.yaml
_DOWNLOAD = re.compile(r"Downloading \S+ \(([0-9.]+) (kB|MB|GB)\)")
_UNIT = {"kB": 1e3, "MB": 1e6, "GB": 1e9}
_STEP = re.compile(r"^#(\d+) (.*)$", flags=re.M)
_DONE = re.compile(r"^(?:DONE|CACHED|ERROR:?)\s*([0-9.]+)?s?", flags=re.M)


def slowest_steps(log: str, count: int = 5) -> list[dict[str, Any]]:
    """BuildKit's plain progress names a step on its first `#N` line and ends it with `#N DONE 12.3s`:
    the slowest steps say where a build's time went (pip, the cache import, the export)."""
    names: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for number, text in _STEP.findall(log):
        done = _DONE.match(text)
        if done and done.group(1):
            seconds[number] = float(done.group(1))
        elif number not in names and not done:
            names[number] = text[:90]
    slow = sorted(seconds.items(), key=lambda item: -item[1])[:count]
    return [{"step": names.get(number, f"#{number}"), "seconds": s} for number, s in slow]


def emptied(client: docker.DockerClient) -> None:
    """No image but the local base, no build cache (pip's cache mount included). The base stays:
    a second build host pulls the very same base by digest, and `make-local-base` gives a new image
    id each time it runs, which would stale the lock and every cache key after FROM."""
    empty(client, keep=(LOCAL_BASE,))
    client.api.prune_builds(all=True)  # `empty` keeps cache mounts; a cold build has no pip cache either


def build(env: dict[str, str], args: list[str], work: Path, cache: str | None, label: str = "") -> dict[str, Any]:
    label = label or ("registry cache" if cache else "cold")
    reports = work / f"reports-{uuid.uuid4().hex[:6]}"
    extra = ["--cache-registry", cache] if cache else []
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "imagekit", "build", *args, "--only", IMAGE, "--reports", str(reports),
                          "--out", str(work / "build"), *extra], cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    seconds = time.monotonic() - started
    if out.returncode != 0:
        raise RuntimeError(f"imagekit build failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    log = (reports / "logs" / f"build-{IMAGE}.log").read_text(errors="replace")
    pypi = sum(float(n) * _UNIT[u] for n, u in _DOWNLOAD.findall(log))
    cached = len(re.findall(r"^#\d+ CACHED$", log, flags=re.M))
    print(f"  {label}: {seconds:.0f} s, {pypi / 1e9:.2f} GB from PyPI, {cached} steps cached", flush=True)
    steps = slowest_steps(log)
    print("    slowest steps: " + "; ".join(f"{s['step'][:50]} {s['seconds']:.0f} s" for s in steps), flush=True)
    return {"seconds": round(seconds, 1), "pypi_bytes": int(pypi), "cached_steps": cached, "slowest_steps": steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()
    env = engine_env(ENGINE)
    client = docker.DockerClient(base_url=env["DOCKER_HOST"], timeout=600)
    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "registry cache": []}
    with workspace() as work:
        registry = Registry(work / "registry")
        try:
            (work / "repo.yaml").write_text(f"repository: imagekit-bench/cache-{uuid.uuid4().hex[:6]}\n")
            lock = work / "bench.lock"
            shutil.copy(ROOT / "overlays" / "local-debian.lock", lock)
            args = [*(w for m in BASE_MATRICES for w in ("--matrix", m)), "--matrix", str(work / "repo.yaml"), "--lock", str(lock)]
            cache = f"{registry.host}/cache"
            make_local_base(env)
            emptied(client)
            subprocess.run(
                [sys.executable, "-m", "imagekit", "lock", *args, "--only", IMAGE], cwd=ROOT, env=env, check=True, capture_output=True
            )
            print("seed: a cold build that writes the registry cache", flush=True)
            seed = build(env, args, work, cache, "seed")
            stored = registry.stored()
            for i in range(options.repeat):
                for kind in ("cold", "registry cache") if i % 2 == 0 else ("registry cache", "cold"):
                    emptied(client)
                    runs[kind].append(build(env, args, work, cache if kind == "registry cache" else None))
        finally:
            registry.close()
            emptied(client)
    medians = {kind: summary([r["seconds"] for r in found]) for kind, found in runs.items()}
    result = {
        "benchmark": "registry-cache",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0))},
        "engine": client.version().get("Version"),
        "store": "containerd",
        "seed": {**seed, "cache_bytes_in_registry": stored},
        "runs": runs,
        "seconds": medians,
        "ratio_cache_to_cold": round(medians["registry cache"]["median_s"] / medians["cold"]["median_s"], 2),
        "pypi_bytes_median": {kind: sorted(r["pypi_bytes"] for r in found)[len(found) // 2] for kind, found in runs.items()},
    }
    text = json.dumps(result, indent=2) + "\n"
    print(text)
    if options.out:
        options.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
