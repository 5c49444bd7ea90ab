"""Content ids change with what is in the image, and only with that."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from imagekit.core.identity import identify
from imagekit.core.matrix import load_matrix
from imagekit.core.provenance import Provenance, public_url
from imagekit.core.render import Rendered, Renderer

ROOT = Path(__file__).resolve().parent.parent.parent
MATRIX = load_matrix([ROOT / "matrix.yaml"])
RENDERED = Renderer(MATRIX).render(MATRIX.images[2])
BASE = "nvidia/cuda@sha256:" + "a" * 64


def test_content_id_is_stable():
    assert identify(RENDERED, BASE).content_id == identify(Renderer(MATRIX).render(MATRIX.images[2]), BASE).content_id


def test_content_id_changes_with_base_dockerfile_and_matrix_entry():
    ids = {
        identify(RENDERED, BASE).content_id,
        identify(RENDERED, "nvidia/cuda@sha256:" + "b" * 64).content_id,
        identify(Rendered(RENDERED.image, {"Dockerfile": RENDERED.context["Dockerfile"] + b"\n"}), BASE).content_id,
        identify(Rendered(replace(RENDERED.image, packages=("pytest==8.3.4",)), RENDERED.context), BASE).content_id,
    }
    assert len(ids) == 4


def test_tags_and_labels():
    ident = identify(RENDERED, BASE)
    assert ident.tags == [
        "imagekit/pytorch:2.6.0-cu121-py3.11-runtime",
        f"imagekit/pytorch:2.6.0-cu121-py3.11-runtime-{ident.content_id[:12]}",
    ]
    labels = ident.labels(
        Provenance(revision="abc123", source="https://git.example/ml/images", created="2026-11-24T00:00:00Z", epoch=1795478400)
    )
    assert labels == {
        "org.opencontainers.image.created": "2026-11-24T00:00:00Z",
        "org.opencontainers.image.revision": "abc123",
        "org.opencontainers.image.source": "https://git.example/ml/images",
        "io.imagekit.content-id": ident.content_id,
        "io.imagekit.base": BASE,
    }


def test_provenance_never_changes_the_content_id():
    # Labels from the host and the clock are outside the hash: a new commit that changes nothing
    # in the image must not rebuild it.
    ident = identify(RENDERED, BASE)
    ident.labels(Provenance(revision="other", source=None, created="2030-01-01T00:00:00Z", epoch=1893456000))
    assert identify(RENDERED, BASE).content_id == ident.content_id


def test_source_label_is_a_credential_free_url_or_nothing():
    assert public_url("https://user:t0ken@git.example/ml/images.git") == "https://git.example/ml/images.git"
    assert public_url("https://git.example/ml/images.git") == "https://git.example/ml/images.git"
    assert public_url("git@git.example:ml/images.git") == "git@git.example:ml/images.git"
    assert public_url("/work/main") is None
    assert public_url(None) is None


def test_created_is_the_last_commit_time_unless_source_date_epoch_is_set(tmp_path, monkeypatch):
    import subprocess

    from imagekit.adapters.git import collect

    env = {"GIT_AUTHOR_DATE": "2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE": "2026-01-02T03:04:05Z", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   check=True, env=env)  # fmt: skip
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert collect(tmp_path, None).created == "2026-01-02T03:04:05Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert collect(tmp_path, None).created == "1970-01-01T00:00:00Z"
