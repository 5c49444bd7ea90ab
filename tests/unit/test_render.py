"""Rendering: deterministic, golden, hadolint-clean, and free of secrets.

Unlike the other unit tests, this module renders the product's own matrix.yaml and templates/ on
purpose: the golden Dockerfiles (tests/golden/) and hadolint are the product's regression net, so
a change to either shows up here as a reviewed diff (IMAGEKIT_UPDATE_GOLDEN=1 regenerates them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from imagekit.core.matrix import load_matrix
from imagekit.core.render import Renderer
from imagekit.errors import ConfigurationError

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
    assert "ARG IMAGEKIT_BASE=nvidia/cuda:12.1.1-base-ubuntu22.04\nFROM ${IMAGEKIT_BASE} AS system" in runtime
    assert "ARG IMAGEKIT_BASE=nvidia/cuda:12.1.1-devel-ubuntu22.04\nFROM ${IMAGEKIT_BASE} AS system" in devel
    # The devel flavor's compilers come before the pip layers: a changed pin does not rebuild them.
    assert devel.index("apt-devel.txt") < devel.index("python3.11 -m venv") and "apt-devel.txt" not in runtime
    for text in (runtime, devel):
        assert "\nUSER 1000\n" in text
        assert "NVIDIA_VISIBLE_DEVICES=all" in text and "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in text
        assert "--mount=type=cache,id=imagekit-pip,target=/root/.cache/pip" in text
        assert "--mount=type=secret,id=pip.conf" in text
        layers = re.findall(r"^# Layer \"([a-z-]+)\"", text, re.MULTILINE)
        assert layers == ["cuda", "torch", "numpy", "rest"], "matrix.yaml's plan, in order"
        for layer in layers:
            assert f"--require-hashes --no-deps -r /run/imagekit/requirements-{layer}.txt" in text
        assert not re.search(r"^#\s*syntax=", text, re.MULTILINE), "a syntax line makes BuildKit pull from Docker Hub"


def test_index_url_with_credentials_never_reaches_the_dockerfile(monkeypatch):
    monkeypatch.setenv("IMAGEKIT_INDEX_USER", "alice")
    monkeypatch.setenv("IMAGEKIT_INDEX_TOKEN", "t0ken-never-in-layers")
    matrix = load_matrix([ROOT / "tests" / "matrices" / "good.yaml", ROOT / "tests" / "matrices" / "overlay-site.yaml"])
    matrix = replace(matrix, templates_dir=ROOT / "templates")
    text = Renderer(matrix).render(matrix.images[0]).dockerfile
    assert "t0ken" not in text and "IMAGEKIT_INDEX_TOKEN" not in text and "mirror.example.internal/simple" not in text


@pytest.mark.tool("hadolint")
def test_hadolint_passes_on_every_rendered_dockerfile(matrix, tmp_path, tools):
    paths = [str(Renderer(matrix).render(i).write(tmp_path) / "Dockerfile") for i in matrix.images]
    out = subprocess.run(
        [*tools["hadolint"], "--config", str(ROOT / "templates" / "hadolint.yaml"), *paths], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_undefined_template_variable_is_an_error_not_an_empty_string(matrix, tmp_path):
    shutil.copy(ROOT / "templates" / "Extension.Dockerfile.j2", tmp_path)
    (tmp_path / "Dockerfile.j2").write_text("FROM {{ image.base_image }}\nRUN echo {{ image.no_such_field }}\n")
    broken = replace(matrix, templates_dir=tmp_path, root=tmp_path)
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
    assert sorted(p.name for p in folder.iterdir()) == [
        "Dockerfile", "apt-system.txt", "layers.json", "requirements-cuda.txt", "requirements-numpy.txt",
        "requirements-rest.txt", "requirements-torch.txt", "write_manifest.py",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def extended():
    m = load_matrix([ROOT / "tests" / "matrices" / "good.yaml", ROOT / "tests" / "matrices" / "extensions.yaml"])
    return replace(m, templates_dir=ROOT / "templates")


def test_an_extension_renders_from_its_parent_with_a_build_argument_default_and_restores_the_user(extended):
    rendered = Renderer(extended).render(extended.image("2.6.0-cu121-py3.11-runtime-tracking"))
    text = rendered.dockerfile
    assert rendered.parent is not None and rendered.parent.image.id == "2.6.0-cu121-py3.11-runtime"
    assert "ARG IMAGEKIT_PARENT=example/pytorch:2.6.0-cu121-py3.11-runtime\nFROM ${IMAGEKIT_PARENT}\n" in text
    assert "xargs -a /run/imagekit/apt-extension.txt apt-get install -y --no-install-recommends" in text
    assert rendered.context["apt-extension.txt"] == b"git\ntini=0.19.0-1\n", "unlocked: the names as the matrix gives them"
    assert "--constraint /tmp/parent-constraints.txt -r /run/imagekit/requirements.txt" in text
    # Quotes and backslashes escaped; $HOME left for the Dockerfile to expand.
    assert 'QUOTED="say \\"hi\\" \\\\ $HOME"' in text
    assert 'RUN echo "2.6.0-cu121-py3.11-runtime-tracking extends 2.6.0-cu121-py3.11-runtime"' in text
    assert "ENV IMAGEKIT_IMAGE_ID=2.6.0-cu121-py3.11-runtime-tracking" in text
    assert 'io.imagekit.parent="2.6.0-cu121-py3.11-runtime"' in text and 'io.imagekit.extension="tracking"' in text
    assert text.rstrip().endswith("USER 1000\nWORKDIR /home/imagekit")
    jupyter = Renderer(extended).render(extended.image("2.6.0-cu121-py3.11-devel-jupyter")).dockerfile
    assert (
        "apt-get" not in jupyter
        and "apt-extension.txt" not in jupyter
        and "From ext/" not in jupyter
        and "-r /run/imagekit/requirements.txt" in jupyter
    )


def test_the_build_context_carries_the_locked_requirement_set(extended):
    from imagekit.core.lock import Lock, Locked

    image = extended.image("2.6.0-cu121-py3.11-runtime")
    unlocked = Renderer(extended).render(image)
    assert [name for name in unlocked.context if name.startswith("requirements")] == [
        "requirements-cuda.txt",
        "requirements-torch.txt",
        "requirements-rest.txt",
    ]
    for name in ("requirements-cuda.txt", "requirements-torch.txt", "requirements-rest.txt"):
        assert unlocked.context[name].decode().startswith(f"# {image.id} is not in the lock file: run `imagekit lock`")
    assert unlocked.base_lock is None
    assert unlocked.context["apt-system.txt"] == b"python3.11\npython3.11-venv\nca-certificates\n"
    requirements = "torch==2.6.0 \\\n    --hash=sha256:" + "b" * 64 + "\n"
    lock = Lock(
        Path("x.lock"),
        {image.id: Locked("i", "sha256:" + "a" * 64, requirements, {"system": ["python3.11=3.11.2-6", "libpython3.11=3.11.2-6"]})},
    )
    locked = Renderer(extended, lock).render(image)
    assert [name for name in locked.context if name.startswith("requirements")] == ["requirements-torch.txt"], "empty layers left out"
    assert locked.context["requirements-torch.txt"] == lock.images[image.id].requirements.encode()
    assert locked.context["apt-system.txt"] == b"python3.11=3.11.2-6\nlibpython3.11=3.11.2-6\n"
    # A base that has the Python: nothing pinned, an empty file, and the step installs nothing.
    bare = Lock(Path("x.lock"), {image.id: Locked("i", "sha256:" + "a" * 64, requirements, {})})
    assert Renderer(extended, bare).render(image).context["apt-system.txt"] == b""
    assert locked.base_lock == "sha256:" + "a" * 64


def test_a_broken_snippet_names_its_file(extended, tmp_path):
    from imagekit.core.matrix import ExtensionSpec

    image = extended.image("2.6.0-cu121-py3.11-runtime-tracking")
    ext = replace(image.extension, snippet="RUN {{ image.nope }}")
    assert isinstance(ext, ExtensionSpec)
    where = re.escape(
        f"{ROOT / 'tests' / 'matrices' / 'extensions.yaml'}:8: extensions.tracking.template: ext/snippet.Dockerfile.j2:1: cannot render"
    )
    with pytest.raises(ConfigurationError, match=rf"^{where} 2.6.0-cu121-py3.11-runtime-tracking: .*nope"):
        Renderer(extended).render(replace(image, extension=ext))


def test_a_missing_extension_template_names_the_remedy(extended, tmp_path):
    shutil.copy(ROOT / "templates" / "Dockerfile.j2", tmp_path)
    with pytest.raises(ConfigurationError, match="Extension.Dockerfile.j2 not found"):
        Renderer(replace(extended, templates_dir=tmp_path))
