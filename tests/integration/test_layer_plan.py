"""The layer plan on a real engine: the built image has one layer per group of the plan, each holding
exactly its packages (read out of `docker save`, layer by layer); a one-pin change rebuilds only the
layer that holds the pin (and the manifest written after it), every layer below it reused from the
build cache with the same digest; an extension's layers are its parent's plus its own."""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml
from e2e_workspace import EXTENSION_ID, IMAGE_ID, Workspace
from engines import CLASSIC

from imagekit.adapters.docker_engine import Engine
from imagekit.core.layers import normalise, parse, sized

pytestmark = pytest.mark.docker

SITE = re.compile(r"^opt/venv/lib/python3\.11/site-packages/([^/]+)\.dist-info/METADATA$")
PLAN = ["cuda", "torch", "numpy", "rest"]  # matrix.yaml's


def dist_infos_by_layer(engine: Engine, ref: str) -> list[set[str]]:
    """Per layer of ``ref``, base first: the pip projects whose METADATA the layer writes. Read from
    `docker save` as a stream, each layer's tar (gzip or not) in turn, nothing unpacked to disk."""
    found: dict[str, set[str]] = {}
    order: list[str] = []
    stream = engine.client.api.get_image(ref, chunk_size=1 << 20)
    with tarfile.open(fileobj=_Chunks(stream), mode="r|") as outer:
        for member in outer:
            if member.name == "manifest.json":
                order = json.loads(outer.extractfile(member).read())[0]["Layers"]
            elif member.isfile() and member.size > 1024:
                names: set[str] = set()
                try:
                    with tarfile.open(fileobj=outer.extractfile(member), mode="r|*") as layer:
                        for entry in layer:
                            match = SITE.match(entry.name.removeprefix("./"))
                            if match:
                                names.add(normalise(match.group(1).rsplit("-", 1)[0]))
                except tarfile.ReadError:
                    continue  # not a layer: the config, the index
                found[member.name] = names
    assert order, "docker save wrote no manifest.json"
    return [found.get(path, set()) for path in order]


class _Chunks:
    """A file over docker-py's chunk iterator, read once, in order."""

    def __init__(self, chunks) -> None:
        self._chunks, self._buffer = iter(chunks), b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = (self._buffer, b"") if size < 0 else (self._buffer[:size], self._buffer[size:])
        return data


def pip_steps(engine: Engine, ref: str) -> dict[str, int]:
    """Layer name → the index of the layer its pip step made (the step's command names its file:
    requirements-<layer>.txt, or an extension's requirements.txt)."""
    layers = sized(engine.layers(ref), engine.history(ref))
    assert all(layer.size is not None for layer in layers), "docker history pairs with the image's layers"
    found = {}
    for i, layer in enumerate(layers):
        match = re.search(r"pip install .*-r /run/imagekit/requirements(?:-([a-z0-9-]+))?\.txt", layer.created_by)
        if match:
            found[match.group(1) or "extension"] = i
    return found


# The plan and the build cache act the same on every store; the classic store reads `docker save`
# uncompressed and rebuilds with --load in seconds, where the bit-for-bit builder rewrites every layer.
@pytest.mark.engines(CLASSIC, primary=False)
def test_each_group_of_the_plan_is_one_layer_holding_exactly_its_packages(built, ws, engine):
    assert built.returncode == 0
    out = ws.imagekit("manifest", *ws.matrix_files, EXTENSION_ID, "--format", "json")
    assert out.returncode == 0, out.stderr
    plan = {layer["name"]: set(layer["packages"]) for layer in json.loads(out.stdout)["layers"]}
    assert list(plan) == [*PLAN, "extension"] and plan["extension"] == {"protobuf", "tensorboardx"}
    lock = yaml.safe_load(Path(ws.matrices[ws.matrices.index("--lock") + 1]).read_text())
    assert set().union(*(plan[name] for name in PLAN)) == {p.name for p in parse(lock["images"][IMAGE_ID]["requirements"])}

    ref = f"{ws.repo}:{EXTENSION_ID}"
    steps = pip_steps(engine, ref)
    assert list(steps) == [*PLAN, "extension"], "one build step per group, in the plan's order, the extension's on top"
    contents = dist_infos_by_layer(engine, ref)
    for name, index in steps.items():
        assert contents[index] == plan[name], name  # the extension's: its packages, nothing of its parent's
    venv = steps["cuda"] - 1  # python -m venv: pip and setuptools
    assert contents[venv] == {"pip", "setuptools"}
    assert [i for i, names in enumerate(contents) if names] == [venv, *steps.values()], "no other step installs a pip package"
    assert engine.layers(ref)[: len(engine.layers(f"{ws.repo}:{IMAGE_ID}"))] == engine.layers(f"{ws.repo}:{IMAGE_ID}")


@pytest.mark.engines(CLASSIC, primary=False)
def test_a_one_pin_change_rebuilds_only_the_layer_that_holds_it(built, ws: Workspace, engine, tmp_path):
    assert built.returncode == 0
    repo = f"{ws.repo}-pin"  # its own repository: the session's tags stay as they are
    overlay = tmp_path / "pin.yaml"
    overlay.write_text(f'repository: {repo}\npackages: ["numpy==2.2.6", "pytest==8.3.4"]\n')
    lock = tmp_path / "pin.lock"
    shutil.copy(ws.matrices[ws.matrices.index("--lock") + 1], lock)
    before = {p.name: p.version for p in parse(yaml.safe_load(lock.read_text())["images"][IMAGE_ID]["requirements"])}
    args = [*ws.matrix_files, "--matrix", str(overlay), "--lock", str(lock), "--only", IMAGE_ID]
    relocked = ws.imagekit("lock", *args)
    assert relocked.returncode == 0, relocked.stderr
    after = {p.name: p.version for p in parse(yaml.safe_load(lock.read_text())["images"][IMAGE_ID]["requirements"])}
    assert {k for k in before | after if before.get(k) != after.get(k)} == {"pytest"}, "one pin moved, the others were kept"
    cache_before = engine.build_cache_ids()
    try:
        build = ws.imagekit("build", *args, "--reports", str(tmp_path / "reports"), timeout=2400)
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        old, new = engine.layers(f"{ws.repo}:{IMAGE_ID}"), engine.layers(f"{repo}:{IMAGE_ID}")
        assert len(old) == len(new)
        steps = pip_steps(engine, f"{repo}:{IMAGE_ID}")
        changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        # The pin's layer and the package manifest written right after it; every other layer the same digest.
        assert changed == [steps["rest"], steps["rest"] + 1], (changed, steps)
        log = (tmp_path / "reports" / "logs" / f"build-{IMAGE_ID}.log").read_text()
        for name in ("cuda", "torch", "numpy"):
            step = re.search(rf"^(#\d+) \[torch [0-9/ ]+\] RUN .*requirements-{name}\.txt", log, re.MULTILINE)
            assert step and re.search(rf"^{step.group(1)} CACHED$", log, re.MULTILINE), f"the {name} step came from the build cache"
        shown = ws.imagekit("layers", *ws.matrix_files, f"{ws.repo}:{IMAGE_ID}", f"{repo}:{IMAGE_ID}", "--format", "json")
        moved = json.loads(shown.stdout)
        assert moved["pulled_layers"] == 2 and moved["pulled_bytes"] < 50 * 10**6, moved
    finally:
        for image in engine.client.images.list(name=repo):
            engine.remove_image(image.id)
        engine.drop_build_cache(cache_before)
