"""Staging, runner classes and promotion, as pure logic and as whole commands on an in-memory registry:
the staged record and test results read as untrusted, the tag schema, the registry protocol Docker
would use, `ci.require` validation, and `imagekit promote`'s rules (what passes, what is refused,
parents first, no layer moved). The same flow on real engines and a real registry:
tests/integration/test_promote.py."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from fakes import FakeEngine, FakeRegistry

from imagekit.adapters.registry import RawManifest, insecure
from imagekit.cli.common import Adapters
from imagekit.core import attestation as at
from imagekit.core import evidence as ev
from imagekit.core import grammar
from imagekit.core.evidence import RunnerClass, StagedImage, SuiteResult, read_staged, result_tag, write_staged
from imagekit.core.matrix import load_matrix
from imagekit.errors import ConfigurationError, MatrixError, SigningError
from imagekit.stages.evidence import Evidence

M = Path(__file__).resolve().parent.parent / "matrices"
PRODUCT = ("--matrix", str(M / "product-like.yaml"), "--matrix", str(M / "product-like-local.yaml"))
BASE, EXT = "2.6.0-cu121-py3.11-runtime", "2.6.0-cu121-py3.11-runtime-tracking"
HOST = "registry.example:5000"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- the staged record and results, read as untrusted -------------------------------------------


def test_a_staged_record_round_trips():
    staged = {BASE: StagedImage(BASE, "a" * 64, f"{HOST}/staging/imagekit/pytorch@{sha(b'x')}")}
    assert read_staged(write_staged(staged), "staged.json") == staged
    assert staged[BASE].name == f"{HOST}/staging/imagekit/pytorch" and staged[BASE].digest == sha(b"x")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("not json", "not JSON"),
        ('{"image_id": "x"}', "expected a list"),
        ('["x"]', "entry 1: not an object"),
        (json.dumps([{"image_id": "a b", "content_id": "a" * 64, "reference": f"{HOST}/s@{sha(b'x')}"}]), "entry 1: image_id"),
        (json.dumps([{"image_id": "a", "content_id": "A" * 64, "reference": f"{HOST}/s@{sha(b'x')}"}]), "entry 1: content_id"),
        (json.dumps([{"image_id": "a", "content_id": "a" * 64, "reference": f"{HOST}/s:latest"}]), "entry 1: reference"),
        (json.dumps([{"image_id": "a", "content_id": "a" * 64, "reference": f"{HOST}/s@{sha(b'x')}\nRUN x"}]), "entry 1: reference"),
        (json.dumps([{"image_id": "a", "content_id": "a" * 64, "reference": f"-H evil/s@{sha(b'x')}"}]), "entry 1: reference"),
        (json.dumps([{"image_id": "a", "content_id": "a" * 64, "reference": f"{HOST}@{sha(b'x')}"}]), "entry 1: reference"),
        (json.dumps([{"image_id": "a", "content_id": "a" * 64, "reference": f"{HOST}/s@{sha(b'x')}", "parent": "x;y"}]), "entry 1: parent"),
        (
            json.dumps([{"image_id": "a", "content_id": "a" * 64, "reference": f"{HOST}/s@{sha(b'x')}"}] * 2),
            "entry 2: image_id: a is staged twice",
        ),
    ],
)
def test_a_staged_record_that_stage_did_not_write_is_refused_naming_entry_and_field(text, named):
    with pytest.raises(ConfigurationError) as info:
        read_staged(text, "reports/staged.json")
    assert info.value.message.startswith("reports/staged.json: ") and named in info.value.message
    assert "\n" not in info.value.message.split(": ", 1)[1][:200] or "not JSON" in named


def result(state: str = "passed", runner: str = "h100-550", digest: str = sha(b"m")) -> SuiteResult:
    return SuiteResult(
        BASE,
        "c" * 64,
        digest,
        RunnerClass(runner, ("NVIDIA H100",), "550.54.15", "Engine 28.5.2"),
        state,
        9,
        0,
        2,
        40.0,
        "2026-12-07T15:00:00Z",
    )


def test_a_result_round_trips_and_anything_else_proves_nothing():
    good = result()
    assert ev.read_result(good.to_json()) == good
    data = json.loads(good.to_json())
    for field, bad in [("state", "passed\n"), ("digest", "sha256:x"), ("passed", -1), ("passed", True), ("content_id", None)]:
        assert ev.read_result(json.dumps({**data, field: bad}).encode()) is None, field
    assert ev.read_result(json.dumps({**data, "runner_class": {**data["runner_class"], "name": "../x"}}).encode()) is None
    assert ev.read_result(b"\xff") is None and ev.read_result(b"[]") is None
    shown = ev.read_result(json.dumps({**data, "runner_class": {**data["runner_class"], "gpus": ["A\x1b[2J"]}}).encode())
    assert shown is not None and shown.runner_class.gpus == ("A?[2J",)


def test_result_tags_follow_the_tag_schema_within_dockers_limit():
    longest = "x" * 40  # the longest class name ci.classes takes
    tag = result_tag(sha(b"m"), longest)
    assert tag.startswith(sha(b"m").replace(":", "-") + ".test-") and grammar.full(grammar.TAG, tag) and len(tag) <= grammar.TAG_MAX


def test_the_artifact_names_its_subject_and_the_empty_config():
    body = ev.artifact_manifest(ev.descriptor(ev.OCI_MANIFEST, sha(b"m"), 10), [ev.descriptor(ev.RESULT_TYPE, sha(b"r"), 1)], {"a": "b"})
    manifest = json.loads(body)
    assert manifest["subject"]["digest"] == sha(b"m") and manifest["artifactType"] == ev.RESULT_TYPE
    assert manifest["config"] == ev.descriptor(ev.EMPTY_TYPE, sha(ev.EMPTY), 2)
    assert ev.artifact_blobs(manifest) == {ev.RESULT_TYPE: sha(b"r")}


# --- speaking to a registry as Docker does --------------------------------------------------------


def test_a_registry_is_insecure_as_the_engine_says():
    loopback = {"RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"], "IndexConfigs": {}}}
    named = {"RegistryConfig": {"InsecureRegistryCIDRs": [], "IndexConfigs": {"build.internal:5000": {"Secure": False}}}}
    assert insecure("127.0.0.1:5055", loopback) and insecure("[::1]:5000", loopback)
    assert not insecure("10.0.0.5:5000", loopback)
    assert insecure("build.internal:5000", named) and not insecure("127.0.0.1:5000", named)
    # No engine to ask: Docker's own defaults (loopback is insecure).
    assert insecure("127.0.0.1:5000", None) and not insecure("10.1.2.3", None)


# --- ci.classes and ci.require --------------------------------------------------------------------


def ci_overlay(tmp_path: Path, text: str) -> list[Path]:
    overlay = tmp_path / "ci.yaml"
    overlay.write_text(text)
    return [M / "product-like.yaml", overlay]


def test_required_classes_are_the_union_of_the_globs_that_match(tmp_path):
    text = (
        "ci:\n  staging: registry.example/staging\n"
        "  classes: {h100-550: {runs_on: [gpu, h100]}, a10g-470: {runs_on: [gpu, a10g]}}\n"
        "  require: {'*': [h100-550], '*cu118*': [a10g-470]}\n"
    )
    matrix = load_matrix(ci_overlay(tmp_path, text))
    assert matrix.ci.require["2.6.0-cu118-py3.11-runtime"] == ("a10g-470", "h100-550")
    assert matrix.ci.require[BASE] == ("h100-550",)
    assert matrix.ci.classes["a10g-470"] == ("gpu", "a10g") and matrix.ci.staging == "registry.example/staging"
    listed = load_matrix(ci_overlay(tmp_path, "ci:\n  classes: {cpu: {runs_on: [x]}}\n  require: [cpu]\n"))
    assert set(listed.ci.require) == {i.id for i in listed.images}
    with pytest.raises(MatrixError) as info:
        load_matrix(ci_overlay(tmp_path, "ci:\n  classes: {cpu: {runs_on: [x]}}\n  require: [cpu, GPU]\n"))
    assert "ci.yaml:3: ci.require" in info.value.problems[0] and "'GPU' is not a name" in info.value.problems[0]


def test_a_required_class_that_is_not_declared_is_refused_where_it_is_named(tmp_path):
    with pytest.raises(MatrixError) as info:
        load_matrix(ci_overlay(tmp_path, "ci:\n  classes: {h100-550: {runs_on: [x]}}\n  require: {'*': [h100-5500]}\n"))
    assert "ci.yaml:3: ci.require.*: h100-5500 is no runner class of ci.classes (declared: gpu, h100-550)" in info.value.problems[0]


# --- imagekit promote, whole, on an in-memory registry --------------------------------------------


class Staging:
    """Two staged images (a base and its extension) in a registry held in memory, as `imagekit
    stage` leaves them, and results recorded through the same Evidence the test command uses."""

    def __init__(self, tmp_path: Path) -> None:
        self.registry = FakeRegistry()
        self.staged: dict[str, StagedImage] = {}
        for image_id, content in ((BASE, "b"), (EXT, "e")):
            path = "staging/imagekit-local/pytorch"
            layers = [self.registry.put_blob(path, f"{image_id}-layer-{n}".encode() * 1000) for n in range(3)]
            config = self.registry.put_blob(path, f'{{"id": "{image_id}"}}'.encode())
            body = json.dumps({"schemaVersion": 2, "mediaType": ev.OCI_MANIFEST, "config": {"digest": config, "size": 1},
                               "layers": [{"digest": d, "size": 1} for d in layers]}).encode()  # fmt: skip
            manifest = RawManifest(sha(body), ev.OCI_MANIFEST, body)
            self.registry.put_manifest(path, f"{image_id}-{content * 12}", manifest)
            parent = self.staged[BASE].reference if image_id == EXT else ""
            self.staged[image_id] = StagedImage(image_id, content * 64, f"{HOST}/{path}@{manifest.digest}", parent)
        self.file = tmp_path / "staged.json"
        self.file.write_text(write_staged(self.staged))
        self.overlay = tmp_path / "ci.yaml"
        self.overlay.write_text(
            f"registry: {HOST}/release\nci:\n  staging: {HOST}/staging\n"
            "  classes: {h100-550: {runs_on: [a]}, a10g-470: {runs_on: [b]}}\n  require: [h100-550, a10g-470]\n"
        )

    def record(self, image_id: str, runner: str, state: str = "passed") -> None:
        staged = self.staged[image_id]
        outcome = SuiteResult(image_id, staged.content_id, staged.digest, RunnerClass(runner, ("GPU",), "550.1", "Engine 28.5.2"),
                             state, 9, 0 if state == "passed" else 1, 0, 30.0, "2026-12-07T15:00:00Z")  # fmt: skip
        Evidence(lambda host: self.registry, RunnerClass(runner)).record(staged, outcome, b"<testsuites/>")

    def promote(self, imagekit, *extra: str, only: str = "*cu121*runtime*"):
        engine = FakeEngine(registry=self.registry)
        adapters = Adapters(engine=lambda: engine, registry=lambda host, **_: self.registry)
        return imagekit("promote", *PRODUCT, "--matrix", str(self.overlay), "--staged", str(self.file), "--only", only,
                        "--reports", str(self.file.parent / "reports"), *extra, adapters=adapters)  # fmt: skip

    def tags(self, path: str = "release/imagekit-local/pytorch") -> dict[str, str]:
        return {ref: m.digest for (repo, ref), m in self.registry.raw.items() if repo == path and not ref.startswith("sha256:")}


def test_promote_refuses_until_every_required_class_passed_then_copies_without_moving_a_layer(imagekit, tmp_path):
    s = Staging(tmp_path)
    s.record(BASE, "h100-550")
    s.record(BASE, "a10g-470", state="failed")
    refused = s.promote(imagekit)
    assert refused.returncode == 1 and s.tags() == {}
    assert "a10g-470: failed (1 failed)" in refused.stdout + refused.stderr
    assert f"h100-550: no result for {s.staged[EXT].digest[:19]}" in refused.stdout + refused.stderr

    s.record(BASE, "a10g-470")
    s.record(EXT, "h100-550")
    s.record(EXT, "a10g-470")
    moved_before = s.registry.moved
    done = s.promote(imagekit)
    assert done.returncode == 0, done.stdout + done.stderr
    base, ext = s.staged[BASE], s.staged[EXT]
    assert s.tags() == {
        BASE: base.digest, f"{BASE}-{'b' * 12}": base.digest, EXT: ext.digest, f"{EXT}-{'e' * 12}": ext.digest,
        **{result_tag(x.digest, c): s.tags().get(result_tag(x.digest, c), "missing") for x in (base, ext) for c in ("h100-550", "a10g-470")},
    }  # fmt: skip
    # Every layer arrived by a mount; what went over the wire is manifests.
    assert all("staging/imagekit-local/pytorch → release/imagekit-local/pytorch" in m for m in s.registry.mounts)
    assert s.registry.moved - moved_before < 20_000
    published = json.loads((tmp_path / "reports" / "published.json").read_text())
    assert [p["image_id"] for p in published] == [BASE, EXT]
    assert {t["class"] for t in published[0]["tested_on"]} == {"h100-550", "a10g-470"}
    again = s.promote(imagekit)
    assert again.returncode == 0 and "unchanged" in again.stdout


def test_an_extension_waits_for_its_parent_and_an_immutable_tag_is_never_moved(imagekit, tmp_path):
    s = Staging(tmp_path)
    for image_id in (BASE, EXT):
        for runner in ("h100-550", "a10g-470"):
            s.record(image_id, runner)
    only_ext = s.promote(imagekit, only=EXT)
    assert only_ext.returncode == 1 and "the one it was staged on) is not in the release repository" in only_ext.stdout + only_ext.stderr
    # Another digest already under the base's immutable release tag: refused, nothing moved.
    other = s.registry.raw[("staging/imagekit-local/pytorch", s.staged[EXT].digest)]
    for blob in [other.json()["config"], *other.json()["layers"]]:
        s.registry.mount_blob("release/imagekit-local/pytorch", blob["digest"], "staging/imagekit-local/pytorch")
    s.registry.put_manifest("release/imagekit-local/pytorch", f"{BASE}-{'b' * 12}", other)
    clash = s.promote(imagekit, only=BASE)
    assert clash.returncode == 1 and "immutable tags are never overwritten" in clash.stdout + clash.stderr
    assert BASE not in s.tags()


def test_dry_run_and_commands_refuse_what_does_not_fit(imagekit, tmp_path):
    s = Staging(tmp_path)
    for image_id in (BASE, EXT):
        for runner in ("h100-550", "a10g-470"):
            s.record(image_id, runner)
    planned = s.promote(imagekit, "--dry-run")
    assert planned.returncode == 0 and "would promote" in planned.stdout and s.tags() == {}
    other_host = s.promote(imagekit, "--registry", "elsewhere.example/release")
    assert other_host.returncode == 1 and "promotion copies within one registry" in other_host.stdout + other_host.stderr
    no_class = imagekit("test", *PRODUCT, "--runner-class", "h100-550")
    assert no_class.returncode == 2 and "--runner-class and --rerun concern staged images" in no_class.stderr
    unknown = imagekit(
        "test",
        *PRODUCT,
        "--matrix",
        str(s.overlay),
        "--staged",
        str(s.file),
        "--runner-class",
        "v100",
        adapters=Adapters(engine=lambda: FakeEngine()),
    )
    assert unknown.returncode == 2 and "is no class of the matrix's ci.classes (gpu, h100-550, a10g-470)" in unknown.stderr
    s.file.write_text('[{"image_id": "x"}]')
    broken = s.promote(imagekit)
    assert broken.returncode == 2 and "staged.json: entry 1: content_id" in broken.stderr
    # A staged.json is a CI artifact: a reference outside the matrix's staging repository is refused
    # before anything is read there (the staging credentials go only where the matrix stages).
    s.file.write_text(
        write_staged({BASE: StagedImage(BASE, "b" * 64, f"evil.example/staging/imagekit-local/pytorch@{s.staged[BASE].digest}")})
    )
    foreign = s.promote(imagekit, only=BASE)
    assert (
        foreign.returncode == 2
        and "is not in the staging repository registry.example:5000/staging/imagekit-local/pytorch" in foreign.stderr
    )


# --- promote with the site's key: signed evidence checked, copied, checked again ------------------


class FakeSigner:
    """What cosign would verify, by repository: ``passes`` are the runner classes with a signed pass
    in each repository's evidence ("staging", "release"); the signature and SBOM are there too."""

    def __init__(self, s: Staging, passes: dict[str, tuple[str, ...]]) -> None:
        self.s, self.passes = s, passes

    def _where(self, reference: str) -> tuple[str, StagedImage]:
        repo = "release" if "/release/" in reference else "staging"
        return repo, next(x for x in self.s.staged.values() if reference.endswith(x.digest))

    def _envelope(self, predicate_type: str, predicate: dict, digest: str) -> str:
        statement = {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": predicate_type,
                     "subject": [{"digest": {"sha256": digest.removeprefix("sha256:")}}], "predicate": predicate}  # fmt: skip
        return json.dumps({"payload": base64.b64encode(json.dumps(statement).encode()).decode()})

    def describe(self) -> str:
        return "fake cosign"

    def verify(self, reference: str) -> str:
        _, staged = self._where(reference)
        return json.dumps([{"critical": {"type": at.SIGNATURE_TYPE, "image": {"docker-manifest-digest": staged.digest}}}])

    def verify_attestations(self, reference: str, predicate_type: str) -> str:
        repo, staged = self._where(reference)
        if predicate_type == "cyclonedx":
            props = [{"name": "imagekit:content-id", "value": staged.content_id}]
            return self._envelope(
                at.CYCLONEDX_PREDICATE, {"bomFormat": "CycloneDX", "metadata": {"component": {"properties": props}}}, staged.digest
            )
        if not self.passes.get(repo):
            raise SigningError("no matching attestations")
        lines = []
        for runner in self.passes[repo]:
            predicate = at.smoke_predicate(image_id=staged.image_id, content_id=staged.content_id, digest=staged.digest, result="passed",
                                           counts=(9, 0, 0), runner={"name": runner}, seconds=1.0, recorded="2026-12-07T15:00:00Z",
                                           junit=b"", properties={})  # fmt: skip
            lines.append(self._envelope(at.SMOKE_PREDICATE, predicate, staged.digest))
        return "\n".join(lines)

    def close(self) -> None:
        pass


def _signed(s: Staging) -> None:
    """cosign's tags beside each staged digest, as `stage` and the test jobs leave them."""
    path = "staging/imagekit-local/pytorch"
    for staged in s.staged.values():
        for suffix in ("sig", "att"):
            layer, config = s.registry.put_blob(path, f"{suffix} of {staged.digest}".encode()), s.registry.put_blob(path, b"{}")
            body = json.dumps({"schemaVersion": 2, "mediaType": ev.OCI_MANIFEST, "config": {"digest": config, "size": 2},
                               "layers": [{"digest": layer, "size": 1}]}).encode()  # fmt: skip
            s.registry.put_manifest(path, f"{staged.digest.replace(':', '-')}.{suffix}", RawManifest(sha(body), ev.OCI_MANIFEST, body))


def _promote_signed(s: Staging, imagekit, signer: FakeSigner, key: Path):
    engine = FakeEngine(registry=s.registry)
    adapters = Adapters(engine=lambda: engine, registry=lambda host, **_: s.registry, signer=lambda access, k, public: signer)
    return imagekit("promote", *PRODUCT, "--matrix", str(s.overlay), "--staged", str(s.file), "--only", "*cu121*runtime*",
                    "--reports", str(s.file.parent / "reports"), "--key", str(key), adapters=adapters)  # fmt: skip


def test_with_a_key_promotion_needs_each_required_classs_signed_pass_and_moves_the_tag_only_after_the_evidence(imagekit, tmp_path):
    s = Staging(tmp_path)
    _signed(s)
    for image_id in (BASE, EXT):
        for runner in ("h100-550", "a10g-470"):
            s.record(image_id, runner)  # recorded passes, but only one class signed its own
    key = tmp_path / "cosign.pub"
    key.write_text("-----BEGIN PUBLIC KEY-----\n")
    refused = _promote_signed(s, imagekit, FakeSigner(s, {"staging": ("h100-550",)}), key)
    assert refused.returncode == 1 and s.tags() == {}
    assert "its evidence does not verify: tests: no verified pass on runner class a10g-470" in refused.stdout + refused.stderr

    # Both classes signed, but the copy does not verify at the release: the moving tag stays put.
    broken = _promote_signed(s, imagekit, FakeSigner(s, {"staging": ("h100-550", "a10g-470")}), key)
    assert broken.returncode == 1 and "its evidence does not verify after the copy" in broken.stdout + broken.stderr
    assert BASE not in s.tags() and f"{BASE}-{'b' * 12}" in s.tags()

    both = ("h100-550", "a10g-470")
    done = _promote_signed(s, imagekit, FakeSigner(s, {"staging": both, "release": both}), key)
    assert done.returncode == 0, done.stdout + done.stderr
    tags = s.tags()
    for staged in s.staged.values():
        assert {f"{staged.digest.replace(':', '-')}.sig", f"{staged.digest.replace(':', '-')}.att"} <= set(tags)
    assert tags[BASE] == s.staged[BASE].digest and tags[EXT] == s.staged[EXT].digest
    published = json.loads((tmp_path / "reports" / "published.json").read_text())
    assert all(any(line.startswith("tests: passed on a10g-470") for line in p["evidence"]) for p in published)
