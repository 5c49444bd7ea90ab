"""Publishing to a real registry: Debian's docker-registry on loopback with htpasswd and TLS (a CA
made here). Pushes the base image and the extension `nox -s build test` built and tested, and checks
every rule: the test gate, an extension only after its exact parent, dry runs, recovery from a
registry stopped mid-push, immutable tags, pull by digest into a clean engine state, credentials
from `docker login`, and that the credential never leaks."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from e2e_workspace import EXTENSION_ID, IMAGE_ID, LOCAL_BASE, ROOT, Workspace, failures, run_suite
from engines import ALL, CLASSIC, CONTAINERD, PRIMARY
from helpers import find_tool
from local_registry import LocalRegistry, serving

from imagekit.adapters.docker_engine import Engine
from imagekit.adapters.registry import MANIFEST_TYPES
from imagekit.core import attestation as at
from imagekit.core.lock import Lock
from imagekit.core.sbom import hashed_pins

# Pushes differ by store: the classic store compresses layers as it pushes and names the image by
# its config; the containerd store pushes the very manifest it holds, and names the image by it.
# Engine 20.10 too: the offline recipe must publish from the engine a site may still run.
# The registry is Debian's docker-registry with an htpasswd file and an openssl-made CA (tests/local_registry.py).
pytestmark = [
    pytest.mark.docker,
    pytest.mark.engines(*ALL),
    pytest.mark.tool("docker-registry", "htpasswd", "openssl", "cosign-2.5", "cosign-3.1"),
]

USER = "imagekit-ci"
PASSWORD = f"registry-pw-{uuid.uuid4().hex}"
KEY_PASSWORD = f"signing-key-pw-{uuid.uuid4().hex}"
# Both cosign generations sign here: 2.5 on the classic store's engine, 3.1 on the others.
COSIGN = {CLASSIC: "cosign-2.5"}


@pytest.fixture(scope="module")
def registry(engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    with serving(engine, tmp_path_factory.mktemp("registry"), USER, PASSWORD) as reg:
        yield reg


class Publish:
    def __init__(self, ws: Workspace, registry: LocalRegistry, keys: Path) -> None:
        self.ws, self.registry = ws, registry
        self.cosign = find_tool(COSIGN.get(ws.engine_name, "cosign-3.1"))
        assert self.cosign is not None
        self.public_key = keys / "cosign.pub"
        subprocess.run([*self.cosign, "generate-key-pair"], cwd=keys, check=True, capture_output=True,
                       env={**os.environ, "COSIGN_PASSWORD": KEY_PASSWORD})  # fmt: skip
        self.env = {**ws.env, "IMAGEKIT_REGISTRY_USER": USER, "IMAGEKIT_REGISTRY_PASSWORD": PASSWORD,
                    "IMAGEKIT_SIGNING_KEY": str(keys / "cosign.key"), "IMAGEKIT_SIGNING_PASSWORD": KEY_PASSWORD,
                    "IMAGEKIT_COSIGN": self.cosign[0]}  # fmt: skip
        self.path = f"ml/{ws.repo}"
        self.outputs: list[str] = []

    def argv(self, *extra: str, reports: Path | None = None, registry: str | None = None) -> list[str]:
        return [sys.executable, "-m", "imagekit", "publish", *self.ws.matrices, "--reports", str(reports or self.ws.reports),
                "--registry", registry or f"{self.registry.host}/ml", "--retries", "1", *extra]  # fmt: skip

    def run(self, *extra: str, **kw: object) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(self.argv(*extra, **kw), capture_output=True, text=True, cwd=ROOT, env=self.env, timeout=1800)  # type: ignore[arg-type]
        self.outputs.append(out.stdout + out.stderr)
        return out

    def fetch(self, path: str, accept: str = "*/*") -> str:
        r = requests.get(f"https://{self.registry.host}/v2/{path}", auth=(USER, PASSWORD), headers={"Accept": accept},
                         verify=str(self.registry.folder / "ca.crt"), timeout=30)  # fmt: skip
        r.raise_for_status()
        return r.text

    def digest(self, path: str, tag: str) -> tuple[str, str] | None:
        """(manifest digest, config digest) the registry holds for path:tag."""
        r = requests.get(f"https://{self.registry.host}/v2/{path}/manifests/{tag}", auth=(USER, PASSWORD),
                         headers={"Accept": MANIFEST_TYPES},
                         verify=str(self.registry.folder / "ca.crt"), timeout=30)  # fmt: skip
        return (r.headers["Docker-Content-Digest"], r.json()["config"]["digest"]) if r.ok else None


@pytest.fixture(scope="module")
def pub(built, ws, registry, tmp_path_factory) -> Publish:
    assert built.returncode == 0, built.stderr[-3000:]
    return Publish(ws, registry, tmp_path_factory.mktemp("signing-keys"))


def test_an_untested_image_is_refused(pub, ws, registry, tmp_path):
    out = pub.run(reports=tmp_path / "no-reports")
    assert out.returncode == 1 and "no smoke report" in out.stdout and "not published" in out.stderr
    # A passing report, but for other content: refused too.
    stale = tmp_path / "stale"
    (stale / "junit").mkdir(parents=True)
    text = (ws.reports / "junit" / f"{IMAGE_ID}.xml").read_text()
    root = ET.fromstring(text)
    for prop in root.iter("property"):
        if prop.get("name") == "imagekit.content-id":
            prop.set("value", "0" * 64)
    (stale / "junit" / f"{IMAGE_ID}.xml").write_text(ET.tostring(root, encoding="unicode"))
    out = pub.run(reports=stale)
    assert out.returncode == 1 and "is for content 000000000000" in out.stdout
    assert registry.tags(pub.path) == []


def test_dry_run_shows_the_plan_and_pushes_nothing(pub, registry, ws):
    out = pub.run("--dry-run")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "would publish" in out.stdout
    assert f"{registry.host}/ml/{ws.repo}:{IMAGE_ID}" in out.stdout
    # The extension would go too: its parent goes first in the same run.
    assert f"{registry.host}/ml/{ws.repo}:{EXTENSION_ID}" in out.stdout
    assert registry.tags(pub.path) == []


def test_an_extension_waits_for_its_parent_in_the_registry(pub, registry, ws):
    out = pub.run("--only", f"*{EXTENSION_ID[-8:]}", registry=f"{registry.host}/lonely")
    assert out.returncode == 1
    assert f"its parent {IMAGE_ID} is not in the registry with the content it was built on" in out.stdout
    assert "publish the parent first" in out.stdout
    assert registry.tags(f"lonely/{ws.repo}") == []


def _registry_bytes(registry: LocalRegistry) -> int:
    """Bytes under the registry's storage, read while it writes: an upload it finishes (or moves)
    between the listing and the stat counts as gone (os.walk skips folders that vanish)."""
    total = 0
    for folder, _, files in os.walk(registry.folder / "data"):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


@pytest.fixture(scope="module")
def published(pub, registry, ws):
    """Publish with the registry stopped mid-push, restart it, publish again."""
    proc = subprocess.Popen(pub.argv(), cwd=ROOT, env=pub.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while _registry_bytes(registry) < 50 * 2**20 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, "the push finished before the registry could be stopped"
    registry.stop()
    stdout, stderr = proc.communicate(timeout=900)
    pub.outputs.append(stdout + stderr)
    registry.start()
    cut = {"code": proc.returncode, "stdout": stdout, "stderr": stderr, "tags": registry.tags(pub.path),
           "published": json.loads((ws.reports / "published.json").read_text())}  # fmt: skip
    if ws.engine_name == PRIMARY:
        # Publish again as a user runs the whole job: `nox -s build test publish`, one argument set
        # for the three sessions (build finds both images unchanged, test runs both suites again).
        # What only some of them take goes through the environment, as README "Publishing" shows.
        only_some = {"IMAGEKIT_REGISTRY": f"{registry.host}/ml", "IMAGEKIT_RETRIES": "1", "IMAGEKIT_GPUS": "none"}
        second = subprocess.run([*ws.nox("build", "test", "publish"), "--", *ws.args()],
                                capture_output=True, text=True, cwd=ROOT, env={**pub.env, **only_some}, timeout=1800)  # fmt: skip
        pub.outputs.append(second.stdout + second.stderr)
    else:
        # The sessions are the same on every engine; the push is what differs: publish alone.
        second = pub.run()
    return {"cut": cut, "second": second, "records": json.loads((ws.reports / "published.json").read_text())}


def test_a_push_cut_off_by_a_stopped_registry_recovers_without_loss_or_duplicates(published, pub, registry, ws):
    cut, second = published["cut"], published["second"]
    assert cut["code"] == 1, cut["stdout"] + cut["stderr"]
    assert "failed" in cut["stdout"] and "not published" in cut["stderr"]
    assert IMAGE_ID not in cut["tags"], "the moving tag must not move before the immutable one is in"
    assert EXTENSION_ID not in cut["tags"], "an extension must not go before its parent"
    assert cut["published"] == [], "nothing half-pushed may be recorded as published"

    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "published" in second.stdout
    if ws.engine_name == PRIMARY:
        assert "unchanged" in second.stdout, "nox -s build finds both images unchanged"
    base, extension = published["records"]
    assert (base["image_id"], extension["image_id"]) == (IMAGE_ID, EXTENSION_ID)
    immutables = [r["tags"][0].rsplit(":", 1)[1] for r in (base, extension)]
    tags = registry.tags(pub.path)
    assert [t for t in tags if not t.startswith("sha256-")] == sorted([IMAGE_ID, EXTENSION_ID, *immutables])
    # Signing was on: each digest has its signature and its attestations (cosign's tag schema), nothing else.
    assert [t for t in tags if t.startswith("sha256-")] == sorted(
        f"{r['digest'].replace(':', '-')}.{s}" for r in (base, extension) for s in ("att", "sig")
    )
    for record, immutable, moving in zip((base, extension), immutables, (IMAGE_ID, EXTENSION_ID), strict=True):
        assert record["digest"] == pub.digest(pub.path, immutable)[0] == pub.digest(pub.path, moving)[0]
        assert record["size"] > 10**9 and record["report"].endswith(f"{moving}.xml") and PASSWORD not in json.dumps(record)
    # The extension names the very parent manifest it sits on.
    assert extension["parent"] == f"{registry.host}/ml/{ws.repo}@{base['digest']}" and "parent" not in base
    assert "## published" in (ws.reports / "summary.md").read_text()


def test_each_published_digest_carries_a_signature_an_sbom_and_a_passing_test_that_verify(published, pub, registry, ws, tmp_path):
    """`nox -s build test publish` with IMAGEKIT_SIGNING_KEY: `imagekit check` and plain cosign, as
    a consumer runs them with `docker login`'s credentials, accept each published image; the SBOM
    lists every package of the lock with its version and hashes, and validates against CycloneDX 1.6."""
    config = tmp_path / "docker-config"
    config.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    env = {k: v for k, v in pub.env.items() if not k.startswith(("IMAGEKIT_REGISTRY_", "IMAGEKIT_SIGNING_"))} | {
        "DOCKER_CONFIG": str(config)
    }
    refs = [f"{registry.host}/ml/{ws.repo}:{image_id}" for image_id in (IMAGE_ID, EXTENSION_ID)]
    out = subprocess.run([sys.executable, "-m", "imagekit", "check", *refs, "--key", str(pub.public_key)],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)  # fmt: skip
    pub.outputs.append(out.stdout + out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("signature: 1 verified") == 2 and out.stdout.count("tests: passed on local") == 2
    lock = Lock.read(Path(ws.matrices[ws.matrices.index("--lock") + 1]))
    for record in published["records"]:
        assert any(line.startswith("SBOM: CycloneDX 1.6") for line in record["evidence"]), record
        ref = f"{registry.host}/ml/{ws.repo}@{record['digest']}"
        # Plain cosign as a consumer runs it: the registry's CA named (cosign reads no /etc/docker/certs.d).
        ca = f"--registry-cacert={registry.folder / 'ca.crt'}"
        cosign = [*pub.cosign, "verify-attestation", "--key", str(pub.public_key), "--insecure-ignore-tlog", ca, "--type", "cyclonedx", ref]
        verified = subprocess.run(cosign, capture_output=True, text=True, env=env, timeout=300)
        assert verified.returncode == 0, verified.stderr
        (statement,) = at.statements(verified.stdout)
        sbom = statement.predicate
        assert statement.about(record["digest"]) and JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(sbom)) is None
        pip = {c["name"]: c for c in sbom["components"] if c.get("purl", "").startswith("pkg:pypi/")}
        locked = hashed_pins(lock.images[record["image_id"]].requirements)
        assert len(pip) == len(locked)
        for name, version, hashes in locked:
            component = pip[re.sub(r"[-_.]+", "-", name).lower()]
            assert component["version"] == version and sorted(h["content"] for h in component["hashes"]) == sorted(hashes)
        # The CUDA libraries torch loads, from the image's own package manifest.
        assert any({"name": "imagekit:cuda-library", "value": "true"} in c["properties"] for c in pip.values())
        smoke = subprocess.run([*pub.cosign, "verify-attestation", "--key", str(pub.public_key), "--insecure-ignore-tlog", ca,
                                "--type", at.SMOKE_PREDICATE, ref], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
        (statement,) = at.statements(smoke.stdout)
        evidence = at.smoke_evidence(statement)
        assert evidence is not None and evidence.ok and evidence.runner_class == "local"
        assert evidence.content_id == record["content_id"] and evidence.image_id == record["image_id"]


def test_immutable_tags_are_never_overwritten(published, pub, registry, engine, ws):
    immutable = published["records"][0]["tags"][0].rsplit(":", 1)[1]
    squatter = f"{registry.host}/other/{ws.repo}"
    engine.tag(LOCAL_BASE, f"{squatter}:{immutable}")
    engine.push(squatter, immutable, {"username": USER, "password": PASSWORD})
    base = engine.key(LOCAL_BASE)

    out = pub.run(registry=f"{registry.host}/other")
    assert out.returncode == 1
    assert "already exists with other content" in out.stdout and "never overwritten" in out.stdout
    manifest, config = pub.digest(f"other/{ws.repo}", immutable)
    assert (manifest if base.of == "manifest" else config) == base.digest, "the existing immutable tag was overwritten"
    assert IMAGE_ID not in registry.tags(f"other/{ws.repo}")
    assert "publish the parent first" in out.stdout, "the extension of a refused parent must not go either"


def test_pull_by_digest_into_a_clean_engine_and_smoke_it(published, pub, registry, engine, ws, tmp_path):
    record = published["records"][0]
    reference = f"{registry.host}/ml/{ws.repo}@{record['digest']}"
    attrs = engine.inspect_image(f"{ws.repo}:{IMAGE_ID}")
    local_tags = attrs["RepoTags"]
    engine.client.images.remove(attrs["Id"], force=True)
    assert engine.inspect_image(attrs["Id"]) is None, "the image is still on the engine"
    try:
        engine.client.images.pull(reference, auth_config={"username": USER, "password": PASSWORD})
        pulled = engine.inspect_image(reference)
        assert pulled is not None and pulled["Id"] == attrs["Id"]
        code, root = run_suite(engine, ws, tmp_path, "/imagekit/smoke/test_environment.py", "/imagekit/smoke/test_gpu.py", image=reference)
        assert code == 0 and root is not None and failures(root) == {}
    finally:
        for tag in local_tags:  # give the session's other tests their image back
            if engine.inspect_image(reference) is not None:
                engine.tag(reference, tag)
        # The removed build's layers linger as build cache beside the pulled copy: drop them.
        engine.drop_build_cache(ws.cache_before)


def test_the_credential_never_leaks(published, pub, ws, engine, registry):
    texts = {f"output {n}": out for n, out in enumerate(pub.outputs)}
    texts |= {str(p): p.read_text(errors="replace") for p in ws.reports.rglob("*") if p.is_file() and p.suffix != ".pt"}
    for image_id in (IMAGE_ID, EXTENSION_ID):
        texts[f"history {image_id}"] = json.dumps(engine.client.api.history(f"{ws.repo}:{image_id}"))
        texts[f"inspect {image_id}"] = json.dumps(engine.inspect_image(f"{ws.repo}:{image_id}"))
    # What signing put in the registry: signatures and attestations (their manifests and blobs).
    for record in published["records"]:
        for suffix in ("sig", "att"):
            manifest = pub.fetch(
                f"{pub.path}/manifests/{record['digest'].replace(':', '-')}.{suffix}", accept="application/vnd.oci.image.manifest.v1+json"
            )
            texts[f"{suffix} of {record['image_id']}"] = manifest + "".join(pub.fetch(f"{pub.path}/blobs/{layer['digest']}")
                                                                              for layer in json.loads(manifest)["layers"])  # fmt: skip
    leaked = [where for where, text in texts.items() for secret in (PASSWORD, KEY_PASSWORD) if secret in text]
    assert leaked == [], f"the registry or signing key password appears in {leaked}"
    key = (pub.public_key.parent / "cosign.key").read_text()
    private = "".join(key.splitlines()[1:-1])
    assert not any(private[:40] in text for text in texts.values()), "the private key's material appears in an output"


def test_credentials_from_docker_login(published, pub, registry, ws, tmp_path):
    """Without IMAGEKIT_REGISTRY_*, publish uses what `docker login` stored, as on a workstation."""
    config = tmp_path / "docker-config"
    config.mkdir()
    env = {k: v for k, v in pub.env.items() if not k.startswith("IMAGEKIT_REGISTRY_")} | {"DOCKER_CONFIG": str(config)}
    target = f"{registry.host}/login"
    argv = pub.argv("--only", IMAGE_ID, registry=target)

    refused = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    pub.outputs.append(refused.stdout + refused.stderr)
    assert refused.returncode == 1 and "failed" in refused.stdout, "no credentials at all must not publish"

    docker = shutil.which("docker", path=env.get("PATH"))
    assert docker, "the docker CLI is needed for `docker login`"
    login = subprocess.run([docker, "login", registry.host, "--username", USER, "--password-stdin"],
                           input=PASSWORD, capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert login.returncode == 0, login.stderr
    assert json.loads((config / "config.json").read_text())["auths"][registry.host]["auth"]

    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
    pub.outputs.append(out.stdout + out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert IMAGE_ID in registry.tags(f"login/{ws.repo}")


def test_zstd_layers_are_pushed_as_zstd_and_the_image_pulls_and_passes_the_smoke_suite(pub, registry, engine, ws, tmp_path):
    """`publish.compression: zstd` on the containerd store: the same layers as the gzip image (by
    content), zstd blobs in the registry, and a pull of them that runs the suite. Elsewhere the
    builder cannot write them, and the build says so before building anything."""
    repo = f"{ws.repo}-zstd"
    overlay = tmp_path / "zstd.yaml"
    overlay.write_text(f"repository: {repo}\npublish: {{compression: zstd}}\n")
    lock = tmp_path / "zstd.lock"
    shutil.copy(ws.matrices[ws.matrices.index("--lock") + 1], lock)
    args = [*ws.matrix_files, "--matrix", str(overlay), "--lock", str(lock), "--only", IMAGE_ID, "--reports", str(tmp_path / "reports")]
    assert ws.imagekit("lock", *args[:-2]).returncode == 0  # new inputs recorded, pins kept
    if ws.engine_name != CONTAINERD:
        refused = ws.imagekit("build", *args)
        assert refused.returncode == 2 and "asks for zstd layers (publish.compression), which this builder cannot write" in refused.stderr
        assert engine.inspect_image(f"{repo}:{IMAGE_ID}") is None
        return
    cache_before = engine.build_cache_ids()
    try:
        build = ws.imagekit("build", *args, timeout=2400)
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        local = engine.inspect_image(f"{repo}:{IMAGE_ID}")
        assert local["RootFS"]["Layers"] == engine.layers(f"{ws.repo}:{IMAGE_ID}"), "the same layers, byte for byte, in other blobs"
        assert local["Id"] != engine.inspect_image(f"{ws.repo}:{IMAGE_ID}")["Id"]
        tested = ws.imagekit("test", *args, "--gpus", "none")
        assert tested.returncode == 0, tested.stdout[-3000:]
        argv = [sys.executable, "-m", "imagekit", "publish", *args, "--registry", f"{registry.host}/ml", "--retries", "1"]
        out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=pub.env, timeout=1800)
        pub.outputs.append(out.stdout + out.stderr)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        digest = json.loads((tmp_path / "reports" / "published.json").read_text())[0]["digest"]
        r = requests.get(f"https://{registry.host}/v2/ml/{repo}/manifests/{digest}", auth=(USER, PASSWORD),
                         headers={"Accept": MANIFEST_TYPES}, verify=str(registry.folder / "ca.crt"), timeout=30)  # fmt: skip
        assert {layer["mediaType"] for layer in r.json()["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}

        reference = f"{registry.host}/ml/{repo}@{digest}"
        engine.client.images.remove(local["Id"], force=True)
        engine.client.images.pull(reference, auth_config={"username": USER, "password": PASSWORD})
        code, root = run_suite(engine, ws, tmp_path, "/imagekit/smoke/test_environment.py", image=reference)
        assert code == 0 and root is not None and failures(root) == {}
    finally:
        for image in engine.client.images.list(name=repo) + engine.client.images.list(name=f"{registry.host}/ml/{repo}"):
            engine.remove_image(image.id)
        engine.drop_build_cache(cache_before)


@pytest.mark.engines()  # the containerd store's builder alone can write a registry cache (facts.md)
def test_a_builder_with_an_empty_cache_builds_an_unchanged_image_from_the_registry_cache(published, pub, registry, engine, ws, tmp_path):
    """`build --cache-registry`: a build writes BuildKit's cache (mode=max) to the registry; with
    its image and every build cache record this session made gone, the next build takes the
    extension's steps from that cache (its log says CACHED, pip installs nothing) and gives the
    same image, bit for bit. The cache lies in the repository the images were published to."""
    tag = f"{ws.repo}:{EXTENSION_ID}"
    attrs = engine.inspect_image(tag)
    before, tags = attrs["Id"], attrs["RepoTags"]
    # BuildKit reaches the registry with what `docker login` stored, beside the engine's buildx plugin.
    config = tmp_path / "docker-config"
    shutil.copytree(ws.env["DOCKER_CONFIG"], config, symlinks=True)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    env = {**ws.env, "DOCKER_CONFIG": str(config), "IMAGEKIT_CACHE_REGISTRY": f"{registry.host}/ml"}
    reports = tmp_path / "reports"
    argv = [sys.executable, "-m", "imagekit", "build", *ws.matrices, "--reports", str(reports), "--only", EXTENSION_ID]
    log = reports / "logs" / f"build-{EXTENSION_ID}.log"

    def rebuild() -> str:
        engine.remove_image(before)  # the parent stays: an extension is built on it
        out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
        pub.outputs.append(out.stdout + out.stderr)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert f"build cache: {registry.host}/ml, read and written" in out.stderr, out.stderr[-3000:]
        return log.read_text()

    def extension_steps() -> list[str]:
        return [r.get("Description", "") for r in engine.build_cache() if "parent-constraints" in r.get("Description", "")]

    try:
        written = rebuild()
        assert f"buildcache-{EXTENSION_ID}" in registry.tags(pub.path), written[-3000:]
        assert engine.inspect_image(tag)["Id"] == before
        assert extension_steps(), "the extension's pip step should be in the local build cache after a build"

        engine.drop_build_cache(ws.cache_before)
        assert extension_steps() == [], "the local build cache must not hold the extension's steps any more"
        cached = rebuild()
        assert f"importing cache manifest from {registry.host}/ml/{ws.repo}:buildcache-{EXTENSION_ID}" in cached, cached[-3000:]
        pip_step = next(line.split()[0] for line in cached.splitlines() if "parent-constraints" in line and line.startswith("#"))
        assert f"{pip_step} CACHED" in cached, cached[-3000:]
        assert "Installing collected packages" not in cached
        assert engine.inspect_image(tag)["Id"] == before, "the image built from the registry cache differs"
    finally:
        for t in tags:  # the session's other tests get the extension back
            if engine.inspect_image(t) is None and engine.inspect_image(tag) is not None:
                engine.tag(tag, t)


def test_layers_reads_two_published_images_from_the_registry_with_docker_logins_credentials(published, pub, registry, ws, tmp_path):
    base, extension = published["records"]
    a, b = f"{registry.host}/ml/{ws.repo}@{base['digest']}", f"{registry.host}/ml/{ws.repo}@{extension['digest']}"
    # The CI's registry secrets are for the registry `publish` pushes to; a host named on the command
    # line gets what `docker login` stored for it, and nothing else.
    env = {k: v for k, v in pub.env.items() if not k.startswith("IMAGEKIT_REGISTRY_")} | {"DOCKER_CONFIG": str(tmp_path)}
    argv = [sys.executable, "-m", "imagekit", "layers", a, b, "--format", "json"]
    refused = subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, env={**env, "IMAGEKIT_REGISTRY_USER": USER, "IMAGEKIT_REGISTRY_PASSWORD": PASSWORD}
    )
    assert refused.returncode == 1 and "refused" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))  # as `docker login` writes it
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert (found["compared_by"], found["sizes"]) == ("blob", "compressed")

    def blobs(digest: str) -> list[tuple[str, int]]:
        r = requests.get(f"https://{registry.host}/v2/ml/{ws.repo}/manifests/{digest}", auth=(USER, PASSWORD),
                         headers={"Accept": MANIFEST_TYPES}, verify=str(registry.folder / "ca.crt"), timeout=30)  # fmt: skip
        return [(layer["digest"], layer["size"]) for layer in r.json()["layers"]]

    held, wanted = {d for d, _ in blobs(base["digest"])}, blobs(extension["digest"])
    assert [layer["blob"] for layer in found["layers"]] == [d for d, _ in wanted]
    assert [layer["in_a"] for layer in found["layers"]] == [d in held for d, _ in wanted]
    new = [(d, size) for d, size in wanted if d not in held]
    assert 0 < found["pulled_layers"] == len(new) < len(wanted), "the extension's own layers, not its parent's"
    assert found["pulled_bytes"] == sum(size for _, size in new), "as the registry stores them"
