"""Signed evidence as pure logic: the CycloneDX SBOM made from the committed lock (validated against
the official 1.6 schema), the smoke-test predicate, reading what cosign verified as untrusted, and the
checks `imagekit check`, publish and promote make on it. Real cosign and a real registry, tampering
included: tests/integration/test_signing.py; the published torch images: tests/integration/test_publish.py."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from imagekit.core import attestation as at
from imagekit.core.lock import Lock
from imagekit.core.manifest import Package, PackageManifest
from imagekit.core.matrix import load_matrix
from imagekit.core.sbom import Base, Subject, cyclonedx, hashed_pins
from imagekit.errors import SigningError
from imagekit.stages.signing import check

ROOT = Path(__file__).resolve().parents[2]
MATRICES = [ROOT / "matrix.yaml", ROOT / "overlays" / "local-debian.yaml"]
LOCK = ROOT / "overlays" / "local-debian.lock"
DIGEST = "sha256:" + "d" * 64
CONTENT = "c" * 64
SUBJECT = Subject("registry.example:5000/ml/imagekit/pytorch", DIGEST, CONTENT)


@pytest.fixture(scope="module")
def product():
    matrix = load_matrix(MATRICES)
    images = {i.id: i for i in matrix.images}
    return images, Lock.read(LOCK)


def _sbom(product, image_id: str, manifest: PackageManifest | None = None) -> dict:
    images, lock = product
    image = images[image_id]
    chain = [lock.images[image.id]] + ([lock.images[image.parent]] if image.parent else [])
    base = (
        Base("registry.example:5000/ml/imagekit/pytorch", "sha256:" + "e" * 64, True)
        if image.parent
        else Base(image.base_image, "sha256:" + "b" * 64, False)
    )
    return cyclonedx(image, chain, manifest, SUBJECT, base)


def test_the_sbom_validates_against_the_cyclonedx_1_6_schema_and_lists_every_locked_package(product):
    images, lock = product
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    for image_id in images:
        sbom = _sbom(product, image_id)
        errors = validator.validate_str(json.dumps(sbom))
        assert errors is None, f"{image_id}: {errors}"
        pip = {c["name"]: c for c in sbom["components"] if c.get("purl", "").startswith("pkg:pypi/")}
        locked = hashed_pins(lock.images[image_id].requirements)
        assert len(pip) == len(locked) > 20
        for name, version, hashes in locked:
            component = pip[re.sub(r"[-_.]+", "-", name).lower()]
            assert component["version"] == version and component["purl"] == f"pkg:pypi/{component['name']}@{version}"
            assert sorted(h["content"] for h in component["hashes"]) == sorted(hashes) and hashes
        deb = {c["name"]: c["version"] for c in sbom["components"] if c.get("purl", "").startswith("pkg:deb/")}
        for pin in lock.images[image_id].apt_pins():
            name, version = pin.split("=", 1)
            assert deb[name] == version
        meta = sbom["metadata"]["component"]
        assert {"name": "imagekit:content-id", "value": CONTENT} in meta["properties"] and meta["version"] == DIGEST


def test_the_schema_check_can_fail(product):
    sbom = _sbom(product, next(iter(product[0])))
    sbom["components"][1]["hashes"][0]["alg"] = "SHA-257"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(sbom)) is not None


def test_an_extensions_sbom_names_its_parent_by_digest_and_keeps_the_parents_apt_pins(product):
    images, lock = product
    extension = next(i for i in images.values() if i.parent)
    sbom = _sbom(product, extension.id)
    base = next(c for c in sbom["components"] if c["bom-ref"] == "base")
    assert (
        base["purl"].startswith("pkg:oci/pytorch@sha256%3A") and "repository_url=registry.example:5000/ml/imagekit/pytorch" in base["purl"]
    )
    assert {"name": "imagekit:role", "value": "parent image"} in base["properties"]
    deb = {c["name"] for c in sbom["components"] if c.get("purl", "").startswith("pkg:deb/")}
    parent_pins = {p.split("=", 1)[0] for p in lock.images[extension.parent].apt_pins()}
    assert parent_pins <= deb and {p.split("=", 1)[0] for p in lock.images[extension.id].apt_pins()} <= deb


def test_the_sbom_marks_cuda_libraries_and_the_bases_own_packages_and_is_the_same_every_time(product):
    images, _ = product
    image_id = next(i for i in images if not images[i].parent)
    manifest = PackageManifest(
        ref="x", image_id=image_id, size=1, python="3.11.2", cuda_toolkit=None, torch_cuda="12.4",
        cuda_libraries={"nvidia-cublas-cu12": "12.4.5.8"},
        packages={("apt", "libc6"): Package("apt", "libc6", "2.36-9+deb12u10", 1), ("pip", "torch"): Package("pip", "torch", "2.6.0", 1)},
    )  # fmt: skip
    first, second = _sbom(product, image_id, manifest), _sbom(product, image_id, manifest)
    assert json.dumps(first) == json.dumps(second), "the same content must give the same SBOM (serial number included)"
    cublas = next(c for c in first["components"] if c["name"] == "nvidia-cublas-cu12")
    assert {"name": "imagekit:cuda-library", "value": "true"} in cublas["properties"]
    libc = next(c for c in first["components"] if c["name"] == "libc6")
    assert libc["version"] == "2.36-9+deb12u10" and {"name": "imagekit:source", "value": "base image (dpkg status)"} in libc["properties"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(first)) is None


# --- what cosign printed, read as untrusted ---------------------------------------------------------


def envelope(statement: object) -> str:
    return json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(json.dumps(statement).encode()).decode()})


def statement(predicate_type: str, predicate: dict, digest: str = DIGEST) -> dict:
    return {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": predicate_type,
            "subject": [{"name": "x", "digest": {"sha256": digest.removeprefix("sha256:")}}], "predicate": predicate}  # fmt: skip


def smoke(result: str = "passed", content: str = CONTENT, runner: str = "local", failed: int = 0) -> dict:
    return at.smoke_predicate(
        image_id="img", content_id=content, digest=DIGEST, result=result, counts=(5, failed, 1),
        runner={"name": runner, "gpus": ["NVIDIA H100"], "driver": "550.54", "engine": "Engine 28.5.2"},
        seconds=3.0, recorded="2026-12-07T00:00:00Z", junit=b"<testsuites/>", properties={"timing.x": "1"},
    )  # fmt: skip


def test_statements_skip_what_is_not_an_in_toto_statement():
    good = statement(at.SMOKE_PREDICATE, smoke())
    lines = ["not json", json.dumps({"payload": "!!!"}), envelope({"_type": "other"}), envelope([1]), envelope(good),
             envelope({**good, "subject": [{"digest": {"sha256": "short"}}]})]  # fmt: skip
    found = at.statements("\n".join(lines))
    assert [s.subjects for s in found] == [(DIGEST,), ()]
    assert found[0].about(DIGEST) and not found[1].about(DIGEST)


def test_only_image_signatures_of_the_digest_count():
    # cosign 3 prints verified attestations among the signatures; their type is the predicate type.
    entries = [
        {"critical": {"type": at.SIGNATURE_TYPE, "image": {"docker-manifest-digest": DIGEST}}},
        {"critical": {"type": at.SMOKE_PREDICATE, "image": {"docker-manifest-digest": DIGEST}}},
        {"critical": {"type": at.SIGNATURE_TYPE, "image": {"docker-manifest-digest": "sha256:" + "0" * 64}}},
        "junk",
    ]
    assert at.signatures_for(json.dumps(entries), DIGEST) == 1
    assert at.signatures_for("not json", DIGEST) == 0


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p["counts"].update(passed=-1),
        lambda p: p["counts"].update(failed=True),
        lambda p: p["image"].update(contentId="../x"),
        lambda p: p.update(result="green"),
        lambda p: p["junitReport"].update(sha256="abc"),
        lambda p: p.pop("runnerClass"),
    ],
)
def test_a_malformed_smoke_predicate_proves_nothing(change):
    predicate = smoke()
    change(predicate)
    assert at.smoke_evidence(at.Statement(at.SMOKE_PREDICATE, (DIGEST,), predicate)) is None


def test_a_smoke_predicate_reads_back_and_prints_only_printable_text():
    predicate = smoke()
    predicate["runnerClass"]["name"] = "h100\x1b[31m"
    found = at.smoke_evidence(at.Statement(at.SMOKE_PREDICATE, (DIGEST,), predicate))
    assert found is not None and found.ok and found.runner_class == "h100?[31m"
    assert "5 passed, 0 failed, 1 skipped" in found.describe()


# --- the checks on verified evidence (a signer that returns what a registry might hold) ------------


class Verified:
    """What cosign would print after verifying; ``fail``: predicate types (or "signature") it refuses."""

    def __init__(self, sbom_content: str = CONTENT, smokes: tuple[dict, ...] = (), fail: tuple[str, ...] = ()) -> None:
        self.sbom = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [],
                     "metadata": {"component": {"properties": [{"name": "imagekit:content-id", "value": sbom_content}]}}}  # fmt: skip
        self.smokes, self.fail = smokes or (smoke(),), fail

    def verify(self, reference: str) -> str:
        if "signature" in self.fail:
            raise SigningError("no signatures found")
        return json.dumps([{"critical": {"type": at.SIGNATURE_TYPE, "image": {"docker-manifest-digest": DIGEST}}}])

    def verify_attestations(self, reference: str, predicate_type: str) -> str:
        if predicate_type in self.fail:
            raise SigningError("no matching attestations")
        if predicate_type == "cyclonedx":
            return envelope(statement(at.CYCLONEDX_PREDICATE, self.sbom))
        return "\n".join(envelope(statement(at.SMOKE_PREDICATE, s)) for s in self.smokes)


REF = f"registry.example:5000/ml/imagekit/pytorch@{DIGEST}"


def test_signature_sbom_and_a_pass_for_this_content_verify():
    found = check(Verified(), REF, CONTENT)  # type: ignore[arg-type]
    assert found.ok and found.signatures == 1 and found.sbom is not None and len(found.smoke) == 1
    assert any(line.startswith("tests: passed on local") for line in found.lines())


@pytest.mark.parametrize(
    ("signer", "problem"),
    [
        (Verified(fail=("signature",)), "signature: no signatures found"),
        (Verified(fail=("cyclonedx",)), "SBOM: no matching attestations"),
        (Verified(sbom_content="f" * 64), "SBOM: no CycloneDX SBOM names content"),
        (Verified(fail=(at.SMOKE_PREDICATE,)), "tests: no matching attestations"),
        (Verified(smokes=(smoke(result="failed", failed=2),)), "tests: no verified passing"),
        (Verified(smokes=(smoke(content="f" * 64),)), "tests: no verified passing"),
    ],
)
def test_what_is_missing_or_does_not_verify_is_named(signer, problem):
    found = check(signer, REF, CONTENT)  # type: ignore[arg-type]
    assert not found.ok and any(p.startswith(problem) for p in found.problems), found.problems


def test_required_runner_classes_each_need_their_own_verified_pass():
    signer = Verified(smokes=(smoke(runner="h100-550"), smoke(runner="a10g-470", result="failed", failed=1)))
    found = check(signer, REF, CONTENT, ("h100-550", "a10g-470"))  # type: ignore[arg-type]
    assert found.problems == ("tests: no verified pass on runner class a10g-470 (its latest result counts)",)


def test_a_classes_later_failure_outweighs_its_earlier_pass():
    earlier, later = smoke(runner="h100-550"), smoke(runner="h100-550", result="failed", failed=1)
    later["recorded"] = "2026-12-08T00:00:00Z"
    found = check(Verified(smokes=(earlier, later)), REF, CONTENT, ("h100-550",))  # type: ignore[arg-type]
    assert found.problems[-1] == "tests: no verified pass on runner class h100-550 (its latest result counts)"
    assert check(Verified(smokes=(later, {**earlier, "recorded": "2026-12-09T00:00:00Z"})), REF, CONTENT, ("h100-550",)).ok  # type: ignore[arg-type]


def test_a_staged_image_needs_its_signature_and_sbom_only():
    assert check(Verified(fail=(at.SMOKE_PREDICATE,)), REF, CONTENT, tests=False).ok  # type: ignore[arg-type]
