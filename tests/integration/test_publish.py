"""Publishing to a real registry: Debian's docker-registry on loopback with htpasswd and TLS (a CA
made here). Pushes the image `nox -s build test` built and tested, and checks every rule: the test
gate, dry runs, recovery from a registry stopped mid-push, immutable tags, pull by digest into a
clean engine state, and that the credential never leaks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from e2e_workspace import IMAGE_ID, LOCAL_BASE, ROOT, Workspace, failures, run_suite
from local_registry import LocalRegistry

from imagekit.engine import Engine

pytestmark = pytest.mark.docker

USER = "imagekit-ci"
PASSWORD = f"registry-pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def registry(engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    reg = LocalRegistry(tmp_path_factory.mktemp("registry"), USER, PASSWORD)
    reg.start()
    yield reg
    reg.close()
    for image in engine.client.images.list():
        for tag in image.tags:
            if tag.startswith(f"{reg.host}/"):
                engine.client.images.remove(tag)  # an untag: the images themselves belong to other fixtures


class Publish:
    def __init__(self, ws: Workspace, registry: LocalRegistry) -> None:
        self.ws, self.registry = ws, registry
        self.env = {**ws.env, "IMAGEKIT_REGISTRY_USER": USER, "IMAGEKIT_REGISTRY_PASSWORD": PASSWORD}
        self.path = f"ml/{ws.repo}"
        self.outputs: list[str] = []

    def argv(self, *extra: str, reports: Path | None = None, registry: str | None = None) -> list[str]:
        return [sys.executable, "-m", "imagekit", "publish", *self.ws.matrices, "--reports", str(reports or self.ws.reports),
                "--registry", registry or f"{self.registry.host}/ml", "--retries", "1", *extra]  # fmt: skip

    def run(self, *extra: str, **kw: object) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(self.argv(*extra, **kw), capture_output=True, text=True, cwd=ROOT, env=self.env, timeout=1800)  # type: ignore[arg-type]
        self.outputs.append(out.stdout + out.stderr)
        return out

    def digest(self, path: str, tag: str) -> tuple[str, str] | None:
        """(manifest digest, config digest) the registry holds for path:tag."""
        r = requests.get(f"https://{self.registry.host}/v2/{path}/manifests/{tag}", auth=(USER, PASSWORD),
                         headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
                         verify=str(self.registry.folder / "ca.crt"), timeout=30)  # fmt: skip
        return (r.headers["Docker-Content-Digest"], r.json()["config"]["digest"]) if r.ok else None


@pytest.fixture(scope="module")
def pub(built, ws, registry) -> Publish:
    assert built.returncode == 0, built.stderr[-3000:]
    return Publish(ws, registry)


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


def test_nox_build_test_publish_dry_run_shows_the_plan_and_pushes_nothing(pub, registry, ws):
    # The whole chain as a user runs it; one argument set serves all three sessions.
    args = [*ws.args(), "--registry", f"{registry.host}/ml", "--dry-run", "--gpus", "none"]
    out = subprocess.run([*ws.nox("build", "test", "publish"), "--", *args],
                         capture_output=True, text=True, cwd=ROOT, env=pub.env, timeout=1800)  # fmt: skip
    pub.outputs.append(out.stdout + out.stderr)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "unchanged" in out.stdout and "would publish" in out.stdout
    assert f"{registry.host}/ml/{ws.repo}:{IMAGE_ID}" in out.stdout
    assert registry.tags(pub.path) == []


def _registry_bytes(registry: LocalRegistry) -> int:
    return sum(f.stat().st_size for f in (registry.folder / "data").rglob("*") if f.is_file())


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
    second = pub.run()
    return {"cut": cut, "second": second, "records": json.loads((ws.reports / "published.json").read_text())}


def test_a_push_cut_off_by_a_stopped_registry_recovers_without_loss_or_duplicates(published, pub, registry, ws):
    cut, second = published["cut"], published["second"]
    assert cut["code"] == 1, cut["stdout"] + cut["stderr"]
    assert "failed" in cut["stdout"] and "not published" in cut["stderr"]
    assert IMAGE_ID not in cut["tags"], "the moving tag must not move before the immutable one is in"
    assert cut["published"] == [], "nothing half-pushed may be recorded as published"

    assert second.returncode == 0, second.stdout + second.stderr
    (record,) = published["records"]
    immutable = record["tags"][0].rsplit(":", 1)[1]
    assert registry.tags(pub.path) == sorted([IMAGE_ID, immutable])
    local = json.dumps(record)
    assert record["digest"] == pub.digest(pub.path, immutable)[0] == pub.digest(pub.path, IMAGE_ID)[0]
    assert record["size"] > 10**9 and record["report"].endswith(f"{IMAGE_ID}.xml") and PASSWORD not in local
    assert "## published" in (ws.reports / "summary.md").read_text()


def test_immutable_tags_are_never_overwritten(published, pub, registry, engine, ws):
    immutable = published["records"][0]["tags"][0].rsplit(":", 1)[1]
    squatter = f"{registry.host}/other/{ws.repo}"
    engine.tag(LOCAL_BASE, f"{squatter}:{immutable}")
    engine.push(squatter, immutable, {"username": USER, "password": PASSWORD})
    base_id = engine.inspect_image(LOCAL_BASE)["Id"]

    out = pub.run(registry=f"{registry.host}/other")
    assert out.returncode == 1
    assert "already exists with other content" in out.stdout and "never overwritten" in out.stdout
    assert pub.digest(f"other/{ws.repo}", immutable)[1] == base_id, "the existing immutable tag was overwritten"
    assert IMAGE_ID not in registry.tags(f"other/{ws.repo}")


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


def test_the_credential_never_leaks(published, pub, ws, engine):
    texts = {f"output {n}": out for n, out in enumerate(pub.outputs)}
    texts |= {str(p): p.read_text(errors="replace") for p in ws.reports.rglob("*") if p.is_file() and p.suffix != ".pt"}
    texts["history"] = json.dumps(engine.client.api.history(f"{ws.repo}:{IMAGE_ID}"))
    texts["inspect"] = json.dumps(engine.inspect_image(f"{ws.repo}:{IMAGE_ID}"))
    leaked = [where for where, text in texts.items() if PASSWORD in text]
    assert leaked == [], f"the registry password appears in {leaked}"
