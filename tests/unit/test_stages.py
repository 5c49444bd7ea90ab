"""Whole commands in process on fake adapters (tests/unit/fakes.py): the stages' rules — lock before
the first build, parents before extensions, one failure never stopping the others, the publish gate
and the order of tags — checked without an engine, a registry or a process. The same paths run on
real engines in tests/integration."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from fakes import FakeBuilds, FakeEngine, adapters

from imagekit.adapters.registry import Manifest
from imagekit.errors import SigningError

MATRIX = Path(__file__).resolve().parent.parent / "matrices" / "product-like.yaml"
RUNTIME = "2.6.0-cu121-py3.11-runtime"
TRACKING = f"{RUNTIME}-tracking"
DEVEL = "2.6.0-cu121-py3.11-devel"


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A fake engine and builder, and the arguments every command of a test shares."""
    monkeypatch.setenv("IMAGEKIT_CACHE", str(tmp_path / "cache"))  # the builder's probed level
    engine = FakeEngine()
    builds = FakeBuilds(engine)
    args = ["--matrix", str(MATRIX), "--lock", str(tmp_path / "new.lock"), "--reports", str(tmp_path / "reports")]
    return engine, builds, args, tmp_path


def test_a_first_build_locks_then_builds_parents_before_extensions_and_a_second_changes_nothing(imagekit, world):
    engine, builds, args, tmp_path = world
    resolved: list[str] = []
    fakes = adapters(engine, builds, resolved)
    out = imagekit("build", *args, "--only", "*cu121*-runtime*", "--out", str(tmp_path / "build"), adapters=fakes)
    assert out.returncode == 0, out.stderr
    assert f"no lock file {tmp_path / 'new.lock'}: locking 2 image(s) first" in out.stderr
    assert f"wrote {tmp_path / 'new.lock'} (commit it)" in out.stdout and (tmp_path / "new.lock").is_file()
    assert len(resolved) == 2 and "tensorboardX==2.6.2.2" in resolved[1], "the extension is resolved with its own packages"
    assert builds.built == [RUNTIME, TRACKING], "the extension after its parent"
    tracking = engine.names[f"imagekit/pytorch:{TRACKING}"]
    runtime = engine.names[f"imagekit/pytorch:{RUNTIME}"]
    assert tracking["RootFS"]["Layers"][:-1] == runtime["RootFS"]["Layers"], "built on its parent's exact layers"
    assert tracking["Config"]["Labels"]["io.imagekit.parent-content-id"] == runtime["Config"]["Labels"]["io.imagekit.content-id"]

    again = imagekit("build", *args, "--only", "*cu121*-runtime*", "--out", str(tmp_path / "build"), "--locked", adapters=fakes)
    assert again.returncode == 0 and "locking" not in again.stderr
    assert builds.built == [RUNTIME, TRACKING] and again.stdout.count("unchanged") == 2, "nothing rebuilt"


def test_a_failed_parent_blocks_its_extension_and_nothing_else(imagekit, world):
    engine, builds, args, tmp_path = world
    builds.fail.add(RUNTIME)
    out = imagekit("build", *args, "--only", "*cu121*", "--out", str(tmp_path / "build"), adapters=adapters(engine, builds))
    assert out.returncode == 1
    assert builds.built == [DEVEL], "the devel image built beside the failure"
    assert f"2 of 3 image(s) failed to build: {RUNTIME}, {TRACKING}" in out.stderr
    report = (tmp_path / "reports" / "junit" / "build.xml").read_text()
    assert f"not built: its parent {RUNTIME} failed" in report


def test_only_images_that_passed_for_this_content_are_published_immutable_tag_first(imagekit, world):
    engine, builds, args, tmp_path = world
    fakes = adapters(engine, builds)
    assert imagekit("build", *args, "--only", "*cu121*-runtime*", "--out", str(tmp_path / "build"), adapters=fakes).returncode == 0
    engine.suite_fails.add(TRACKING)
    tested = imagekit("test", *args, "--only", "*cu121*-runtime*", "--gpus", "none", adapters=fakes)
    assert tested.returncode == 1 and f"1 of 2 image(s) did not pass the smoke suite: {TRACKING}" in tested.stderr

    published = imagekit("publish", *args, "--only", "*cu121*-runtime*", "--registry", "127.0.0.1:5000/ml", adapters=fakes)
    assert published.returncode == 1
    content_tag = engine.names[f"imagekit/pytorch:{RUNTIME}"]["Config"]["Labels"]["io.imagekit.content-id"][:12]
    target = "127.0.0.1:5000/ml/imagekit/pytorch"
    assert engine.pushed == [f"{target}:{RUNTIME}-{content_tag}", f"{target}:{RUNTIME}"], "immutable tag, then the moving one"
    assert "its smoke report has 1 failed test(s): test_torch_imports" in published.stdout
    record = json.loads((tmp_path / "reports" / "published.json").read_text())
    assert [r["image_id"] for r in record] == [RUNTIME] and record[0]["digest"] == engine.names[f"imagekit/pytorch:{RUNTIME}"]["Id"]


def test_an_immutable_tag_holding_other_content_is_never_overwritten(imagekit, world):
    engine, builds, args, tmp_path = world
    fakes = adapters(engine, builds)
    assert imagekit("build", *args, "--only", RUNTIME, "--out", str(tmp_path / "build"), adapters=fakes).returncode == 0
    assert imagekit("test", *args, "--only", RUNTIME, "--gpus", "none", adapters=fakes).returncode == 0
    content_tag = engine.names[f"imagekit/pytorch:{RUNTIME}"]["Config"]["Labels"]["io.imagekit.content-id"][:12]
    other = Manifest("sha256:" + "e" * 64, "sha256:" + "f" * 64, 1)
    engine.registry.manifests[("ml/imagekit/pytorch", f"{RUNTIME}-{content_tag}")] = other
    out = imagekit("publish", *args, "--only", RUNTIME, "--registry", "127.0.0.1:5000/ml", adapters=fakes)
    assert out.returncode == 1 and "already exists with other content" in out.stdout and "never overwritten" in out.stdout
    assert engine.pushed == [], "nothing pushed, not even the moving tag"


def test_zstd_layers_are_refused_up_front_by_a_builder_that_cannot_write_them(imagekit, world, project_dir):
    engine, builds, args, tmp_path = world
    overlay = project_dir / "zstd.yaml"
    overlay.write_text("publish: {compression: zstd}\n")
    out = imagekit(
        "build", *args, "--matrix", str(overlay), "--only", RUNTIME, "--out", str(tmp_path / "build"), adapters=adapters(engine, builds)
    )
    assert out.returncode == 2 and "asks for zstd layers (publish.compression), which this builder cannot write" in out.stderr
    assert "containerd image store" in out.stderr and builds.built == [], "nothing built, nothing half done"


def test_layers_says_what_a_host_holding_one_image_pulls_to_get_another(imagekit, world):
    engine, builds, args, tmp_path = world
    fakes = adapters(engine, builds)
    assert imagekit("build", *args, "--only", "*cu121*-runtime*", "--out", str(tmp_path / "build"), adapters=fakes).returncode == 0
    local = imagekit("layers", "--matrix", str(MATRIX), RUNTIME, TRACKING, adapters=fakes)
    assert local.returncode == 0, local.stderr
    assert "2 of B's 3 layers are in A (compared by content); a host holding A pulls 1 layer(s), 1.00 MB (unpacked" in local.stdout

    assert imagekit("test", *args, "--only", "*cu121*-runtime*", "--gpus", "none", adapters=fakes).returncode == 0
    registry = "127.0.0.1:5000/ml"
    assert imagekit("publish", *args, "--only", "*cu121*-runtime*", "--registry", registry, adapters=fakes).returncode == 0
    a, b = f"{registry}/imagekit/pytorch:{RUNTIME}", f"{registry}/imagekit/pytorch:{TRACKING}"
    pulled = imagekit("layers", a, b, "--format", "json", adapters=fakes)
    assert pulled.returncode == 0, pulled.stderr
    found = json.loads(pulled.stdout)
    assert (found["compared_by"], found["sizes"], found["pulled_layers"], found["pulled_bytes"]) == ("blob", "compressed", 1, 500_000)
    assert [layer["in_a"] for layer in found["layers"]] == [True, True, False]
    assert engine.pushed.count(b) == 1, "nothing pulled or pushed to compare them"
    missing = imagekit("layers", a, f"{registry}/imagekit/pytorch:nope", adapters=fakes)
    assert missing.returncode == 2 and "127.0.0.1:5000 has no image ml/imagekit/pytorch:nope" in missing.stderr


def test_layers_refuses_what_is_no_reference_and_names_what_is_missing(imagekit, world):
    engine, builds, args, tmp_path = world
    fakes = adapters(engine, builds)
    bad = imagekit("layers", "Not A Ref!", "x:y", adapters=fakes)
    assert bad.returncode == 2 and "'Not A Ref!' is not an image reference or a matrix image id" in bad.stderr
    missing = imagekit("layers", "example/a:1", "example/b:2", adapters=fakes)
    assert missing.returncode == 2 and "no image example/a:1 on this engine" in missing.stderr and "Traceback" not in missing.stderr


def test_staging_keeps_an_immutable_tag_that_holds_the_same_content_and_refuses_other_content(imagekit, world):
    engine, builds, args, tmp_path = world
    fakes = adapters(engine, builds)
    assert imagekit("build", *args, "--only", RUNTIME, "--out", str(tmp_path / "build"), adapters=fakes).returncode == 0
    content_id = engine.names[f"imagekit/pytorch:{RUNTIME}"]["Config"]["Labels"]["io.imagekit.content-id"]
    # Staged before by another builder (a pull request's run) from the same inputs, to other bytes.
    other = Manifest("sha256:" + "e" * 64, "sha256:" + "f" * 64, 1)
    engine.registry.manifests[("staging/imagekit/pytorch", f"{RUNTIME}-{content_id[:12]}")] = other
    engine.registry.configs[other.config_digest] = {"config": {"Labels": {"io.imagekit.content-id": content_id}}}
    out = imagekit("stage", *args, "--only", RUNTIME, "--staging", "127.0.0.1:5000/staging", adapters=fakes)
    assert out.returncode == 0 and "unchanged" in out.stdout and engine.pushed == [], "nothing pushed over it"
    staged = json.loads((tmp_path / "reports" / "staged.json").read_text())
    assert staged == [
        {"image_id": RUNTIME, "content_id": content_id, "reference": f"127.0.0.1:5000/staging/imagekit/pytorch@{other.digest}"}
    ]
    # Other content under that tag: refused, as publishing refuses it.
    engine.registry.configs[other.config_digest] = {"config": {"Labels": {"io.imagekit.content-id": "0" * 64}}}
    refused = imagekit("stage", *args, "--only", RUNTIME, "--staging", "127.0.0.1:5000/staging", adapters=fakes)
    assert refused.returncode == 1 and "immutable tags are never overwritten" in refused.stdout and engine.pushed == []


def test_staged_digests_are_tested_per_runner_class_remembered_and_promoted_whole(imagekit, world, project_dir):
    """stage → test --staged on two classes → promote, whole, on the fakes: what each step hands the next."""
    engine, builds, args, tmp_path = world
    fakes = adapters(engine, builds)
    overlay = project_dir / "ci.yaml"
    overlay.write_text("registry: 127.0.0.1:5000/release\nci:\n  staging: 127.0.0.1:5000/staging\n"
                       "  classes: {h100: {runs_on: [a]}, a10g: {runs_on: [b]}}\n  require: [h100, a10g]\n")  # fmt: skip
    args = [*args, "--matrix", str(overlay)]
    only = ("--only", "*cu121*-runtime*")
    assert imagekit("build", *args, *only, "--out", str(tmp_path / "build"), adapters=fakes).returncode == 0
    staged = imagekit("stage", *args, *only, adapters=fakes)
    assert staged.returncode == 0, staged.stdout + staged.stderr
    assert len(engine.pushed) == 2 and not [p for p in engine.pushed if p.endswith((f":{RUNTIME}", f":{TRACKING}"))], "no moving tag"
    staged_json = str(tmp_path / "reports" / "staged.json")

    def test(runner_class: str, *extra: str):
        return imagekit(
            "test", *args, *only, "--staged", staged_json, "--runner-class", runner_class, "--gpus", "none", *extra, adapters=fakes
        )

    first = test("h100")
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(engine.pulled) == 2 and all("@sha256:" in ref for ref in engine.pulled), "tested by digest"
    again = test("h100")
    assert again.returncode == 0 and again.stdout.count("passed before") == 2 and len(engine.pulled) == 2, "nothing pulled or run again"
    report = (tmp_path / "reports" / "junit" / f"{RUNTIME}.xml").read_text()
    assert "smoke suite (passed before)" in report and "imagekit.runner-class" in report
    assert test("h100", "--rerun").returncode == 0 and len(engine.pulled) == 4, "--rerun runs it"

    engine.suite_fails.add(TRACKING)
    failed = test("a10g")
    assert failed.returncode == 1 and f"1 of 2 image(s) did not pass the smoke suite: {TRACKING}" in failed.stderr
    promoted = imagekit("promote", "--matrix", str(MATRIX), "--matrix", str(overlay), *only, "--staged", staged_json,
                        "--reports", str(tmp_path / "reports"), adapters=fakes)  # fmt: skip
    assert promoted.returncode == 1 and f"1 of 2 image(s) were not promoted: {TRACKING}" in promoted.stderr
    assert "a10g: failed (1 failed)" in promoted.stdout, "a failed class is named"
    release = {ref for (repo, ref) in engine.registry.raw if repo == "release/imagekit/pytorch" and not ref.startswith("sha256:")}
    assert RUNTIME in release and TRACKING not in release, "the parent went; its extension, which failed a class, did not"


class _NothingVerifies:
    """A signer whose evidence never verifies: what it was asked to sign is recorded."""

    def __init__(self) -> None:
        self.signed: list[str] = []

    def describe(self) -> str:
        return "fake cosign"

    def sign(self, reference: str) -> None:
        self.signed.append(reference)

    def attest(self, reference: str, predicate_type: str, predicate: bytes) -> None:
        self.signed.append(f"{reference} {predicate_type}")

    def verify(self, reference: str) -> str:
        raise SigningError("no signatures found")

    def verify_attestations(self, reference: str, predicate_type: str) -> str:
        raise SigningError("no matching attestations")

    def close(self) -> None:
        pass


def test_with_a_key_the_moving_tag_waits_for_evidence_that_verifies(imagekit, world, monkeypatch):
    engine, builds, args, tmp_path = world
    key = tmp_path / "cosign.key"
    key.write_text("not read by the fake")
    monkeypatch.setenv("IMAGEKIT_SIGNING_KEY", str(key))
    signer = _NothingVerifies()
    fakes = dataclasses.replace(adapters(engine, builds), signer=lambda access, k, public: signer)
    assert imagekit("build", *args, "--only", RUNTIME, "--out", str(tmp_path / "build"), adapters=fakes).returncode == 0
    assert imagekit("test", *args, "--only", RUNTIME, "--gpus", "none", adapters=fakes).returncode == 0
    out = imagekit("publish", *args, "--only", RUNTIME, "--registry", "127.0.0.1:5000/ml", adapters=fakes)
    assert out.returncode == 1 and "signing each digest" in out.stderr
    content_tag = engine.names[f"imagekit/pytorch:{RUNTIME}"]["Config"]["Labels"]["io.imagekit.content-id"][:12]
    target = "127.0.0.1:5000/ml/imagekit/pytorch"
    assert engine.pushed == [f"{target}:{RUNTIME}-{content_tag}"], "the immutable tag only: the moving tag waits for the evidence"
    assert signer.signed[0].startswith(f"{target}@sha256:"), "signed by digest, never by tag"
    assert json.loads((tmp_path / "reports" / "published.json").read_text()) == []
