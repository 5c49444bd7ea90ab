"""What differs between the classic and the containerd image store, as far as it is pure logic: what
`FROM` gets for a pinned base, what a push reports, and when a registry's manifest is a local image.
The same on real engines: tests/integration (every engine of tests/engines.py)."""

from __future__ import annotations

from imagekit.adapters.docker_engine import CLASSIC, CONTAINERD, Engine, pushed_digest
from imagekit.adapters.registry import ImageKey, Manifest

LOCAL = "imagekit-local/debian-python:bookworm-py3.11"
D = "sha256:" + "d" * 64


def test_from_a_local_base_the_containerd_store_checks_the_digest_the_classic_store_gets_the_checked_tag():
    containerd, classic = Engine(_store=CONTAINERD), Engine(_store=CLASSIC)
    # A local base is pinned by its image id; BuildKit on the containerd store finds `tag@digest`
    # in the store, and would go to Docker Hub for a bare `name@digest`.
    assert containerd.base_reference(LOCAL, D) == f"{LOCAL}@{D}"
    assert classic.base_reference(LOCAL, D) == LOCAL
    # A registry base is pinned by its registry digest.
    cuda = "nvidia/cuda:12.1.1-base-ubuntu22.04"
    assert classic.base_reference(cuda, f"nvidia/cuda@{D}") == f"nvidia/cuda@{D}"
    assert containerd.base_reference(cuda, f"nvidia/cuda@{D}") == f"{cuda}@{D}"
    assert containerd.base_reference(f"nvidia/cuda@{D}", f"nvidia/cuda@{D}") == f"nvidia/cuda@{D}"


def test_a_push_reports_its_digest_in_either_stores_words():
    assert pushed_digest({"aux": {"Tag": "x", "Digest": D, "Size": 1026}}) == D  # classic
    assert pushed_digest({"status": f"2.6.0-cu121: digest: {D} size: 1026"}) == D  # containerd
    assert pushed_digest({"status": "Layer already exists", "id": "93d6033b9406"}) is None
    assert pushed_digest({"status": "tag: digest: not-a-digest size: 1"}) is None


def test_a_registry_manifest_is_a_local_image_by_config_on_classic_and_by_manifest_on_containerd():
    manifest = Manifest(digest="sha256:m", config_digest="sha256:c", size=1)
    assert ImageKey("sha256:c", "config").served_by(manifest)
    assert not ImageKey("sha256:m", "config").served_by(manifest)
    assert ImageKey("sha256:m", "manifest").served_by(manifest)
    assert not ImageKey("sha256:c", "manifest").served_by(manifest), "same config, other manifest: not the same image"
    assert not ImageKey("sha256:m", "manifest").served_by(None)
