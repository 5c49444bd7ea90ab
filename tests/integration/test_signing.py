"""Signing and verifying on real parts: Debian's cosign 2.5 and 3.1, and Debian's docker-registry on
loopback with TLS and htpasswd. Small images pushed over the registry API stand in for torch images
(the published torch images get the same evidence in test_publish.py): evidence written by imagekit's
cosign adapter, read by `imagekit check` and by plain `cosign verify`, across both cosign versions;
and each kind of tampering refused."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
import requests
from helpers import ROOT, find_tool
from local_registry import LocalRegistry

from imagekit.adapters.cosign import Cosign, KeyedSigner, RegistryAccess, SigningKey, signing_key
from imagekit.core import attestation as at
from imagekit.core.lock import Lock
from imagekit.core.matrix import load_matrix
from imagekit.core.sbom import Base, Subject, cyclonedx, hashed_pins

pytestmark = [pytest.mark.tool("docker-registry", "htpasswd", "openssl", "cosign-2.5", "cosign-3.1")]

USER = "imagekit-signing"
PASSWORD = f"registry-pw-{uuid.uuid4().hex}"
KEY_PASSWORD = f"key-pw-{uuid.uuid4().hex}"
VERSIONS = ("2.5", "3.1")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    reg = LocalRegistry(tmp_path_factory.mktemp("signing-registry"), USER, PASSWORD)
    reg.start()
    yield reg
    reg.close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Two key pairs: the site's and another one's, as `cosign generate-key-pair` writes them."""
    folder = tmp_path_factory.mktemp("keys")
    cosign = find_tool("cosign-3.1")
    assert cosign is not None
    made = {}
    for name in ("site", "other"):
        subprocess.run([*cosign, "generate-key-pair", "--output-key-prefix", str(folder / name)], cwd=folder, check=True,
                       capture_output=True, env={**os.environ, "COSIGN_PASSWORD": KEY_PASSWORD})  # fmt: skip
        made[name] = (folder / f"{name}.key", folder / f"{name}.pub")
    return made


@pytest.fixture(scope="module")
def docker_config(tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry) -> Path:
    """What `docker login` would store: `imagekit check` and plain cosign read it."""
    folder = tmp_path_factory.mktemp("docker-config")
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    return folder


class _Http:
    """requests with the registry's CA and credentials on every call (a per-call `verify` wins over
    REQUESTS_CA_BUNDLE in the environment; a session's would not)."""

    def __init__(self, ca: str) -> None:
        self.ca = ca

    def __getattr__(self, method: str):
        return lambda url, **kw: requests.request(method.upper(), url, auth=(USER, PASSWORD), verify=self.ca, **kw)


class Images:
    """Small images pushed over the registry API, each with the content-id label imagekit writes."""

    def __init__(self, registry: LocalRegistry) -> None:
        self.registry = registry
        self.repo = f"ml/signing-{uuid.uuid4().hex[:8]}"
        self.base = f"https://{registry.host}/v2/{self.repo}"
        self.http = _Http(str(registry.folder / "ca.crt"))

    def blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = self.http.post(f"{self.base}/blobs/uploads/", timeout=30)
        start.raise_for_status()
        self.http.put(start.headers["Location"], params={"digest": digest}, data=data, timeout=30).raise_for_status()
        return digest

    def push(self, tag: str, content_id: str | None = None) -> tuple[str, str]:
        """An image whose one layer holds a file of its own; its (manifest digest, content id)."""
        content_id = content_id or hashlib.sha256(uuid.uuid4().bytes).hexdigest()
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            info = tarfile.TarInfo("content-id")
            info.size = 64
            tar.addfile(info, io.BytesIO(content_id.encode()))
        raw = layer.getvalue()
        packed = gzip.compress(raw, mtime=0)
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"io.imagekit.content-id": content_id}},
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode()  # fmt: skip
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.blob(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": self.blob(packed), "size": len(packed)}],
        }).encode()  # fmt: skip
        put = self.http.put(f"{self.base}/manifests/{tag}", data=manifest, timeout=30,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
        put.raise_for_status()
        return put.headers["Docker-Content-Digest"], content_id

    def ref(self, digest: str) -> str:
        return f"{self.registry.host}/{self.repo}@{digest}"


@pytest.fixture
def images(registry: LocalRegistry) -> Images:
    return Images(registry)


def signer(registry: LocalRegistry, version: str, key: Path | None, public: Path | None = None, *, pem: bool = False) -> KeyedSigner:
    """imagekit's cosign adapter with the key as a file, or (``pem``) as the PEM text a CI secret holds."""
    binary = find_tool(f"cosign-{version}")
    assert binary is not None
    access = RegistryAccess(insecure=False, cacert=registry.folder / "ca.crt", credentials=(USER, PASSWORD))
    signing = (signing_key(key.read_text(), KEY_PASSWORD) if pem else SigningKey(str(key), KEY_PASSWORD)) if key else None
    return KeyedSigner(Cosign(lambda host: access, binary[0]), signing, str(public) if public else None)


@pytest.fixture(scope="module")
def product_sbom_inputs():
    matrix = load_matrix([ROOT / "matrix.yaml", ROOT / "overlays" / "local-debian.yaml"])
    image = next(i for i in matrix.images if i.parent is None)
    return image, Lock.read(ROOT / "overlays" / "local-debian.lock")


def evidence(product_sbom_inputs, ref: str, content_id: str, result: str = "passed") -> tuple[bytes, bytes]:
    """The product image's SBOM (from the committed lock) and a smoke predicate, about ``ref``."""
    image, lock = product_sbom_inputs
    name, digest = ref.rsplit("@", 1)
    sbom = cyclonedx(
        image, [lock.images[image.id]], None, Subject(name, digest, content_id), Base(image.base_image, "sha256:" + "b" * 64, False)
    )
    smoke = at.smoke_predicate(
        image_id=image.id, content_id=content_id, digest=digest, result=result, counts=(9, 0 if result == "passed" else 1, 2),
        runner={"name": "local", "gpus": [], "driver": "", "engine": "test"}, seconds=12.0, recorded="2026-12-07T00:00:00Z",
        junit=b"<testsuites/>", properties={},
    )  # fmt: skip
    return json.dumps(sbom).encode(), json.dumps(smoke).encode()


def attach(s: KeyedSigner, ref: str, sbom: bytes, smoke: bytes | None) -> None:
    s.sign(ref)
    s.attest(ref, "cyclonedx", sbom)
    if smoke is not None:
        s.attest(ref, at.SMOKE_PREDICATE, smoke)


def signed(
    images: Images, keys, product_sbom_inputs, version: str = "3.1", result: str = "passed", tag: str = "v1", pem: bool = False
) -> tuple[str, str]:
    """A new image, signed with the site's key, its SBOM and smoke result attached: (digest, reference)."""
    digest, content_id = images.push(tag)
    ref = images.ref(digest)
    s = signer(images.registry, version, keys["site"][0], pem=pem)
    try:
        attach(s, ref, *evidence(product_sbom_inputs, ref, content_id, result))
    finally:
        s.close()
    return digest, ref


def check(ref: str, public: Path, docker_config: Path, version: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cosign = find_tool(f"cosign-{version}")
    assert cosign is not None
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config), "IMAGEKIT_COSIGN": cosign[0]}
    env.pop("IMAGEKIT_REGISTRY_PASSWORD", None)
    return subprocess.run([sys.executable, "-m", "imagekit", "check", ref, "--key", str(public), *extra],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)  # fmt: skip


def plain_cosign(version: str, docker_config: Path, registry: LocalRegistry, *argv: str) -> subprocess.CompletedProcess[str]:
    """cosign as a consumer runs it (README "Verifying an image"), with `docker login`'s credentials."""
    cosign = find_tool(f"cosign-{version}")
    assert cosign is not None
    return subprocess.run([*cosign, *argv, f"--registry-cacert={registry.folder / 'ca.crt'}"], capture_output=True, text=True,
                          env={**os.environ, "DOCKER_CONFIG": str(docker_config)}, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    ("signed_by", "checked_by", "pem"), [("2.5", "2.5", False), ("3.1", "3.1", True), ("2.5", "3.1", True), ("3.1", "2.5", False)]
)
def test_evidence_signed_by_one_cosign_verifies_with_imagekit_check_and_plain_cosign_of_either(
    signed_by, checked_by, pem, registry, keys, docker_config, images, product_sbom_inputs
):
    """``pem``: the key arrives as its PEM text (a CI secret in IMAGEKIT_SIGNING_KEY), not as a file."""
    digest, ref = signed(images, keys, product_sbom_inputs, signed_by, pem=pem)
    # Both tag schemas' names: the evidence lives beside the image in its own repository.
    tags = registry.tags(images.repo)
    assert f"{digest.replace(':', '-')}.sig" in tags and f"{digest.replace(':', '-')}.att" in tags

    out = check(f"{registry.host}/{images.repo}:v1", keys["site"][1], docker_config, checked_by)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "signature: 1 verified" in out.stdout and "tests: passed on local" in out.stdout
    image, lock = product_sbom_inputs
    assert f"{len(hashed_pins(lock.images[image.id].requirements))} pip" in out.stdout

    verified = plain_cosign(checked_by, docker_config, registry, "verify", "--key", str(keys["site"][1]), "--insecure-ignore-tlog", ref)
    assert verified.returncode == 0, verified.stderr
    assert at.signatures_for(verified.stdout, digest) == 1
    sboms = plain_cosign(checked_by, docker_config, registry, "verify-attestation", "--key", str(keys["site"][1]),
                         "--insecure-ignore-tlog", "--type", "cyclonedx", ref)  # fmt: skip
    assert sboms.returncode == 0, sboms.stderr
    (statement,) = at.statements(sboms.stdout)
    assert statement.about(digest) and statement.predicate["bomFormat"] == "CycloneDX"


def test_a_tag_moved_to_an_unsigned_image_is_refused(registry, keys, docker_config, images, product_sbom_inputs):
    _, ref = signed(images, keys, product_sbom_inputs, tag="release")
    assert check(f"{registry.host}/{images.repo}:release", keys["site"][1], docker_config, "3.1").returncode == 0
    images.push("release")  # someone with push access moves the tag to an image of their own
    out = check(f"{registry.host}/{images.repo}:release", keys["site"][1], docker_config, "3.1")
    assert out.returncode == 1
    assert "signature: none verified" in out.stdout and "not verified" in out.stdout
    # The signed digest itself still verifies: the evidence is bound to it, not to the tag.
    assert check(ref, keys["site"][1], docker_config, "3.1").returncode == 0


def test_an_attestation_signed_with_another_key_is_refused(registry, keys, docker_config, images, product_sbom_inputs):
    digest, content_id = images.push("v1")
    ref = images.ref(digest)
    sbom, smoke = evidence(product_sbom_inputs, ref, content_id)
    site, other = signer(registry, "3.1", keys["site"][0]), signer(registry, "3.1", keys["other"][0])
    try:
        attach(site, ref, sbom, None)
        other.attest(ref, at.SMOKE_PREDICATE, smoke)  # a passing test result, but not signed by the site
    finally:
        site.close(), other.close()
    out = check(ref, keys["site"][1], docker_config, "3.1")
    assert out.returncode == 1
    assert "signature: 1 verified" in out.stdout and "tests: none verified" in out.stdout


def test_a_tampered_sbom_fails_verification(registry, keys, docker_config, images, product_sbom_inputs):
    digest, ref = signed(images, keys, product_sbom_inputs)
    assert check(ref, keys["site"][1], docker_config, "3.1").returncode == 0
    # Rewrite the SBOM inside its signed envelope (torch's version), then put the attestation back.
    tag = f"{digest.replace(':', '-')}.att"
    media = "application/vnd.oci.image.manifest.v1+json"
    manifest = images.http.get(f"{images.base}/manifests/{tag}", headers={"Accept": media}, timeout=30).json()
    changed = 0
    for layer in manifest["layers"]:
        env = images.http.get(f"{images.base}/blobs/{layer['digest']}", timeout=30).json()
        statement = json.loads(base64.b64decode(env["payload"]))
        if statement["predicateType"] != at.CYCLONEDX_PREDICATE:
            continue
        for component in statement["predicate"]["components"]:
            if component["name"] == "torch":
                component["version"] = "2.6.1"
                changed += 1
        env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        body = json.dumps(env).encode()
        layer["digest"], layer["size"] = images.blob(body), len(body)
    assert changed == 1
    images.http.put(
        f"{images.base}/manifests/{tag}", data=json.dumps(manifest), headers={"Content-Type": media}, timeout=30
    ).raise_for_status()
    out = check(ref, keys["site"][1], docker_config, "3.1")
    assert out.returncode == 1
    assert "SBOM: none verified" in out.stdout and "signature: 1 verified" in out.stdout


def test_a_failed_suite_is_attested_but_does_not_pass(registry, keys, docker_config, images, product_sbom_inputs):
    _, ref = signed(images, keys, product_sbom_inputs, "2.5", result="failed")
    out = check(ref, keys["site"][1], docker_config, "2.5", "--format", "json")
    assert out.returncode == 1
    (found,) = json.loads(out.stdout)
    assert found["verified"] is False and any(line.startswith("tests: failed on local") for line in found["found"])
    assert KEY_PASSWORD not in out.stdout + out.stderr and PASSWORD not in out.stdout + out.stderr


def test_bad_input_is_exit_2_with_one_error(keys, docker_config, registry):
    for ref in ("no-registry/image:tag", "127.0.0.1:1/x;rm -rf /"):
        out = check(ref, keys["site"][1], docker_config, "3.1")
        assert out.returncode == 2 and "Traceback" not in out.stderr and "ERROR" in out.stderr + out.stdout
    out = check(f"{registry.host}/ml/x:v1", Path("/nonexistent.pub"), docker_config, "3.1")
    assert out.returncode == 2 and "is not a public key file, a PEM key or a KMS URI" in out.stderr + out.stdout
