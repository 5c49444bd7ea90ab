"""Package manifests compared: what `imagekit diff` reports between two images."""

from __future__ import annotations

from dataclasses import replace

from imagekit.core.manifest import Package, PackageManifest, change_line, diff, human


def manifest(*packages: Package, size: int = 5_000_000_000, toolkit: str | None = "12.1.1") -> PackageManifest:
    return PackageManifest(
        ref="repo:a",
        image_id="2.6.0-cu121-py3.11-runtime",
        size=size,
        python="3.11.2",
        cuda_toolkit=toolkit,
        torch_cuda="12.4",
        cuda_libraries={},
        packages={(p.kind, p.name): p for p in packages},
    )


TORCH = Package("pip", "torch", "2.6.0", 1_594_124_823)
GIT = Package("apt", "git", "1:2.39.5-0+deb12u3", 45_970_000)
PROTOBUF = Package("pip", "protobuf", "5.29.3", 2_280_000)


def test_identical_contents_have_no_changes():
    assert diff(manifest(TORCH, GIT), manifest(TORCH, GIT)) == []


def test_added_removed_and_changed_packages_each_with_their_size_change():
    a = manifest(TORCH, PROTOBUF)
    b = manifest(TORCH, GIT, replace(PROTOBUF, version="5.29.2", size=2_270_000), size=5_050_000_000, toolkit=None)
    lines = [change_line(c) for c in diff(a, b)]
    assert lines == [
        "~ cuda toolkit 12.1.1 → none",
        "+ apt          git 1:2.39.5-0+deb12u3 (+45.97 MB)",
        "~ pip          protobuf 5.29.3 → 5.29.2 (-10.00 kB)",
        "~ size         image 5.00 GB → 5.05 GB (+50.00 MB)",
    ]
    removed = diff(b, a)
    assert change_line(next(c for c in removed if c.name == "git")) == "- apt          git 1:2.39.5-0+deb12u3 (-45.97 MB)"


def test_largest_packages_come_first_whatever_their_kind():
    assert [p.name for p in manifest(PROTOBUF, GIT, TORCH).largest(2)] == ["torch", "git"]


def test_sizes_read_like_docker_images():
    assert [human(n) for n in (512, 39_160, 552_930_509, 5_902_405_380)] == ["512 B", "39.16 kB", "552.93 MB", "5.90 GB"]
