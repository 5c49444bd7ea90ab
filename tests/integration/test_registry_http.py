"""Registries the way Docker reaches them: a plain-HTTP distribution registry on loopback (the quickest
test registry there is, and one `docker push` talks to, since Docker treats 127.0.0.0/8 as insecure)
is spoken to over HTTP by every registry call imagekit makes; a registry Docker would treat as TLS
gets one clear error, not an SSL traceback. Real registry (Debian's docker-registry), no engine."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from e2e_workspace import ROOT

from imagekit.adapters.registry import RawManifest, Registry, insecure
from imagekit.core import evidence as ev
from imagekit.core.evidence import RunnerClass, StagedImage, SuiteResult, write_staged
from imagekit.errors import RegistryError
from imagekit.stages.evidence import Evidence

pytestmark = [pytest.mark.tool("docker-registry")]
M = ROOT / "tests" / "matrices"


@pytest.fixture
def plain_registry(tmp_path: Path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = f"127.0.0.1:{port}"
    (tmp_path / "config.yml").write_text(
        f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\nhttp: {{addr: '{host}'}}\n"
    )
    with (tmp_path / "registry.log").open("ab") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(tmp_path / "config.yml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://{host}/v2/", timeout=2)
                break
            except requests.exceptions.ConnectionError:
                assert time.monotonic() < deadline, (tmp_path / "registry.log").read_text()
                time.sleep(0.2)
        yield host
    finally:
        proc.kill()
        proc.wait()


def _image(registry: Registry, path: str, tag: str) -> str:
    layer = registry.put_blob(path, b"a layer" * 1000)
    config = registry.put_blob(path, b'{"rootfs": {"type": "layers", "diff_ids": []}}')
    body = json.dumps({"schemaVersion": 2, "mediaType": ev.OCI_MANIFEST, "config": ev.descriptor("application/vnd.oci.image.config.v1+json", config, 46),
                       "layers": [ev.descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer, 7000)]}).encode()  # fmt: skip
    return registry.put_manifest(path, tag, RawManifest("sha256:" + hashlib.sha256(body).hexdigest(), ev.OCI_MANIFEST, body))


def test_plain_http_on_loopback_is_spoken_to_as_docker_does_and_a_tls_expectation_is_named(plain_registry):
    assert insecure(plain_registry, None)  # Docker's default: loopback is an insecure registry
    registry = Registry(plain_registry, environment_credentials=False, insecure=True)
    digest = _image(registry, "staging/x", "v1")
    assert registry.raw_manifest("staging/x", "v1").digest == digest
    registry.mount_blob("release/x", registry.raw_manifest("staging/x", digest).json()["layers"][0]["digest"], "staging/x")
    registry.close()

    strict = Registry(plain_registry, environment_credentials=False, insecure=False)
    with pytest.raises(RegistryError) as info:
        strict.raw_manifest("staging/x", "v1")
    assert info.value.message == f"{plain_registry} speaks plain HTTP, and Docker on this host treats it as a TLS registry"
    assert f'"insecure-registries": ["{plain_registry}"]' in (info.value.tip or "")


def test_promote_through_a_plain_http_registry(plain_registry, tmp_path):
    """The whole command, with no engine to ask (Docker's defaults decide), over plain HTTP."""
    registry = Registry(plain_registry, environment_credentials=False, insecure=True)
    image_id = "2.6.0-cu121-py3.11-runtime"
    digest = _image(registry, "staging/imagekit-local/pytorch", f"{image_id}-{'c' * 12}")
    staged = StagedImage(image_id, "c" * 64, f"{plain_registry}/staging/imagekit-local/pytorch@{digest}")
    result = SuiteResult(image_id, "c" * 64, digest, RunnerClass("cpu"), "passed", 1, 0, 0, 1.0, "2026-12-07T00:00:00Z")
    Evidence(lambda host: registry, RunnerClass("cpu")).record(staged, result, b"<testsuites/>")
    (tmp_path / "staged.json").write_text(write_staged({image_id: staged}))
    overlay = tmp_path / "ci.yaml"
    overlay.write_text(f"ci:\n  staging: {plain_registry}/staging\n  classes: {{cpu: {{runs_on: [x]}}}}\n  require: [cpu]\n")
    out = subprocess.run(
        [sys.executable, "-m", "imagekit", "promote", "--matrix", str(M / "product-like.yaml"), "--matrix", str(M / "product-like-local.yaml"),
         "--matrix", str(overlay), "--only", image_id, "--staged", str(tmp_path / "staged.json"), "--reports", str(tmp_path / "reports"),
         "--registry", f"{plain_registry}/release"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/none.sock", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert registry.raw_manifest("release/imagekit-local/pytorch", image_id).digest == digest
    assert registry.raw_manifest("release/imagekit-local/pytorch", ev.result_tag(digest, "cpu")) is not None
