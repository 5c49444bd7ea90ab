"""Content ids change with what is in the image, and only with that."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pytest

from imagekit.core.identity import ENTRY_FIELDS, EXTENSION_FIELDS, content_id, identify
from imagekit.core.matrix import ExtensionSpec, ImageSpec, load_matrix
from imagekit.core.provenance import Provenance, public_url
from imagekit.core.render import Rendered, Renderer

ROOT = Path(__file__).resolve().parent.parent.parent
MATRIX = load_matrix([ROOT / "tests" / "matrices" / "product-like.yaml"])  # the product's matrix, frozen
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


# Every hashed field of one image and one extension, spelled out, and the content ids they had
# when ids were first given out (SCHEMA 1, before `identity.hashed_entry` pinned the fields).
HASHED_BASE = {
    "id": "2.6.0-cu121-py3.11-runtime", "repository": "imagekit/pytorch", "variant": "cu121", "flavor": "runtime",
    "torch": "2.6.0", "torchaudio": "2.6.0", "python": "3.11", "cuda": "12.1.1", "wheel": "cu121", "wheel_cuda": "12.1",
    "driver_min": "525.60.13", "base_image": "nvidia/cuda:12.1.1-base-ubuntu22.04",
    "index_url": "https://download.pytorch.org/whl/cu121", "packages": ("numpy==2.2.3",), "user": "imagekit", "uid": 1000,
}  # fmt: skip
HASHED_EXTENSION = {
    "id": "2.6.0-cu121-py3.11-runtime-tracking", "base_image": "imagekit/pytorch:2.6.0-cu121-py3.11-runtime",
    "parent": "2.6.0-cu121-py3.11-runtime",
    "extension": ExtensionSpec(name="tracking", packages=("tensorboardX==2.6.2.2",), apt=("git",), env=(("TRACKING_LOGDIR", "/opt/runs"),),
                               snippet="RUN true\n", snippet_name="snippet.Dockerfile.j2"),
}  # fmt: skip
CONTEXT = {"Dockerfile": b"FROM scratch\n", "requirements.txt": b"numpy==2.2.3\n"}


def test_content_ids_given_out_stay_as_they_are():
    # Any other field an ImageSpec has (from the matrix here) must not count.
    image = replace(MATRIX.images[0], **HASHED_BASE, parent=None, extension=None)
    extension = replace(image, **HASHED_EXTENSION)
    assert [content_id(Rendered(i, CONTEXT), BASE) for i in (image, extension)] == [
        "5e457874875c0acbec18c44f93ca9d9fae15afad54f54440332d72472a2e665d",
        "0b6033d9ac67a57f98ca2ecac1a048667abfe60ed992cebeff580295fa787582",
    ], "the content id of an unchanged image changed: every image would rebuild under a new content tag"


def test_a_field_added_to_the_specs_changes_no_content_id():
    @dataclass(frozen=True)
    class WiderImage(ImageSpec):
        added: str = "new"

    @dataclass(frozen=True)
    class WiderExtension(ExtensionSpec):
        added: str = "new"

    def wider(image: ImageSpec) -> WiderImage:
        ext = image.extension and WiderExtension(**{f.name: getattr(image.extension, f.name) for f in fields(ExtensionSpec)})
        return WiderImage(**{f.name: getattr(image, f.name) for f in fields(ImageSpec)} | {"extension": ext})

    extension = next(i for i in MATRIX.images if i.extension)
    for image in (RENDERED.image, extension):
        assert content_id(Rendered(wider(image), CONTEXT), BASE) == content_id(Rendered(image, CONTEXT), BASE), image.id


def test_each_spec_field_is_hashed_or_knowingly_not():
    # Fields that reach the image only through the rendered build context (hashed whole: Dockerfile,
    # requirements, …) or not at all, so they stay out of the entry and content ids do not move.
    unhashed: set[str] = {"layers"}  # the plan shapes the Dockerfile and the requirements-<layer>.txt files
    unhashed_extension: set[str] = set()
    # Hashed beside the entry, and only when not the default, so that ids given out before it stay valid.
    hashed_apart = {"compression"}
    added = {f.name for f in fields(ImageSpec)} - {*ENTRY_FIELDS, "parent", "extension"} - unhashed - hashed_apart
    added_extension = {f.name for f in fields(ExtensionSpec)} - set(EXTENSION_FIELDS) - unhashed_extension
    assert not (added or added_extension), (
        f"new spec fields {sorted(added | added_extension)}: if one reaches the image only through the rendered build "
        "context, or not at all, add it to `unhashed` here (content ids stay as they are); if it reaches the image any "
        "other way (a build argument, a label or flag given to the builder), add it to identity.ENTRY_FIELDS or "
        "identity.EXTENSION_FIELDS knowingly: that changes every content id, and every image rebuilds"
    )


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


def test_provenance_goes_into_the_labels_only(monkeypatch):
    # Labels from the host and the clock are outside the hash: a new commit that changes nothing
    # in the image must not rebuild it. Two builds of one image, from provenances that differ in
    # every field, are stamped each with its own, and agree on everything else.
    before = Provenance(revision="1111111", source="https://git.example/ml/images", created="2026-11-24T00:00:00Z", epoch=1795478400)
    after = Provenance(revision="2222222", source="https://git.example/fork/images", created="2030-01-01T00:00:00Z", epoch=1893456000)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(before.epoch))
    first = identify(Renderer(MATRIX).render(MATRIX.images[2]), BASE)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(after.epoch))  # what `adapters.git.collect` reads the time from
    second = identify(Renderer(MATRIX).render(MATRIX.images[2]), BASE)
    assert (second.content_id, second.content_tag) == (first.content_id, first.content_tag)

    stamped = {"org.opencontainers.image.revision", "org.opencontainers.image.source", "org.opencontainers.image.created"}
    old, new = first.labels(before), second.labels(after)
    assert {k: new[k] for k in stamped} == {
        "org.opencontainers.image.revision": after.revision,
        "org.opencontainers.image.source": after.source,
        "org.opencontainers.image.created": after.created,
    }
    assert {k: v for k, v in new.items() if k not in stamped} == {k: v for k, v in old.items() if k not in stamped}
    assert new["io.imagekit.content-id"] == first.content_id
    # Nothing that makes the content id can be handed a provenance.
    for function in (content_id, identify):
        assert all("Provenance" not in str(p.annotation) for p in inspect.signature(function).parameters.values()), function


def test_source_label_is_a_credential_free_url_or_nothing():
    assert public_url("https://user:t0ken@git.example/ml/images.git") == "https://git.example/ml/images.git"
    assert public_url("https://git.example/ml/images.git") == "https://git.example/ml/images.git"
    assert public_url("git@git.example:ml/images.git") == "git@git.example:ml/images.git"
    assert public_url("/work/main") is None
    assert public_url(None) is None


@pytest.mark.tool("git")  # adapters.git reads a real repository
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


def test_zstd_layers_are_other_content_and_gzip_ids_stay_as_they_were():
    gzip = identify(RENDERED, BASE).content_id
    zstd = identify(replace(RENDERED, image=replace(RENDERED.image, compression="zstd")), BASE).content_id
    assert zstd != gzip, "the same files in zstd layers are another image, with other digests"
    assert identify(replace(RENDERED, image=replace(RENDERED.image, compression="gzip")), BASE).content_id == gzip


@pytest.mark.tool("git")
def test_the_build_time_is_fixed_and_the_commit_time_goes_into_the_label(tmp_path, monkeypatch, tools):
    """A commit's time as SOURCE_DATE_EPOCH would give every layer new bytes with every commit, and a
    one-pin change would ship the whole image again: the build gets a fixed time, the label the commit's."""
    import subprocess

    from imagekit.adapters.git import collect
    from imagekit.core.provenance import LAYER_EPOCH

    git = [*tools["git"], "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    for when in ("1795478400", "1893456000"):  # two commits, years apart
        (tmp_path / "matrix.yaml").write_text(when)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", when], check=True, env={"GIT_COMMITTER_DATE": f"@{when} +0000", "PATH": "/usr/bin:/bin"})
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
        found = collect(tmp_path, None)
        assert (found.epoch, found.layer_epoch) == (int(when), LAYER_EPOCH)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the caller's own wins for both
    assert (collect(tmp_path, None).epoch, collect(tmp_path, None).layer_epoch) == (1700000000, 1700000000)
