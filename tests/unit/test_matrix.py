"""matrix.yaml → validated model: merge rules, selection, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagekit.errors import ConfigurationError, MatrixError
from imagekit.matrix import load_matrix

M = Path(__file__).resolve().parent.parent / "matrices"
ROOT = M.parent.parent


def problems(*names: str) -> list[str]:
    with pytest.raises(MatrixError) as info:
        load_matrix([M / n for n in names])
    return info.value.problems


def test_project_matrix_defines_runtime_and_devel_for_both_cuda_variants():
    matrix = load_matrix([ROOT / "matrix.yaml"])
    assert [i.id for i in matrix.images] == [
        "2.6.0-cu118-py3.11-runtime",
        "2.6.0-cu118-py3.11-devel",
        "2.6.0-cu121-py3.11-runtime",
        "2.6.0-cu121-py3.11-devel",
    ]


def test_defaults_derive_base_tag_driver_and_index_from_facts():
    images = {i.id: i for i in load_matrix([M / "good.yaml"]).images}
    runtime = images["2.6.0-cu121-py3.11-runtime"]
    # Runtime images start from CUDA "base": the wheels carry the CUDA libraries.
    assert runtime.base_image == "nvidia/cuda:12.1.1-base-ubuntu22.04"
    assert images["2.6.0-cu121-py3.11-devel"].base_image == "nvidia/cuda:12.1.1-devel-ubuntu22.04"
    assert runtime.tag == "example/pytorch:2.6.0-cu121-py3.11-runtime"
    assert runtime.wheel_cuda == "12.4"
    assert runtime.driver_min == "525.60.13"
    assert images["2.6.0-cu118-py3.11-runtime"].driver_min == "450.80.02"
    # PyPI's torch 2.6.0 is the cu124 build; cu118 comes from the PyTorch index.
    assert runtime.index_url == "${PIP_INDEX_URL:-https://pypi.org/simple}"
    assert images["2.6.0-cu118-py3.11-runtime"].index_url == "https://download.pytorch.org/whl/cu118"


def test_overlay_deep_merges_replaces_lists_and_null_removes():
    matrix = load_matrix([M / "good.yaml", M / "overlay-site.yaml"])
    assert [i.id for i in matrix.images] == ["2.6.0-cu121-py3.11-runtime"]
    (image,) = matrix.images
    assert image.repository == "registry.example.internal/ml/pytorch"
    assert image.base_image == "mirror.example.internal/nvidia/cuda:12.1.1-base-ubuntu22.04"
    assert image.wheel == "cu124"  # kept from the base file: mappings merge key by key
    assert image.index_url.startswith("https://${MIRROR_USER}:${MIRROR_TOKEN}@")
    assert image.packages == ("pytest==8.3.5",)


def test_errors_in_an_overlay_point_at_the_overlay(tmp_path: Path):
    overlay = tmp_path / "site.yaml"
    overlay.write_text("variants:\n  cu121:\n    wheel: cu121\n")
    (problem,) = problems_at([M / "good.yaml", overlay])
    assert problem.startswith(f"{overlay}:3: variants.cu121.wheel:")


def problems_at(paths: list[Path]) -> list[str]:
    with pytest.raises(MatrixError) as info:
        load_matrix(paths)
    return info.value.problems


def test_cu121_wheel_for_torch_26_says_why_and_what_to_pick():
    (problem,) = problems("wheel-cu121.yaml")
    assert problem.startswith(f"{M / 'wheel-cu121.yaml'}:5: variants.cu121.wheel:")
    assert "publishes no cu121 wheel" in problem
    assert "pick wheel: cu124" in problem


def test_unknown_keys_are_refused_with_a_suggestion():
    found = problems("typos.yaml")
    assert f"{M / 'typos.yaml'}:3: flavours: unknown key (did you mean 'flavors'?)" in found
    assert f"{M / 'typos.yaml'}:5: variants.cu118.whel: unknown key (did you mean 'wheel'?)" in found


def test_unquoted_python_version_is_explained():
    (problem,) = problems("python-float.yaml")
    assert problem.startswith(f"{M / 'python-float.yaml'}:2: python: must be a string in quotes")
    assert "number 3.1" in problem


def test_duplicate_keys_are_errors_not_silently_last_wins():
    (problem,) = problems("duplicate-key.yaml")
    assert problem.startswith(f"{M / 'duplicate-key.yaml'}:6: variants.cu118: duplicate key (first at line 5)")


def test_fact_violations_are_all_reported_at_their_lines():
    found = "\n".join(problems("facts.yaml"))
    f = M / "facts.yaml"
    assert f"{f}:1: torch.torchaudio: torch 2.6.0 pairs with torchaudio 2.6.0, not 2.5.1" in found
    assert f"{f}:2: python: torch 2.6.0 publishes wheels for Python 3.9" in found
    assert f"{f}:5: variants.old.cuda: nvidia/cuda 12.1.0 tags are unsupported; use 12.1.1" in found
    assert f"{f}:6: variants.mixed.wheel: wheel cu124 bundles CUDA 12.4 libraries but the base is CUDA 11.8.0" in found
    assert f"{f}:7: variants.lowdriver.driver: CUDA 12.1.1 with wheel cu124 (CUDA 12.4) needs driver >= 525.60.13" in found
    assert "on driver 470.82.01 use wheel cu118" in found
    assert f"{f}:8: packages.0: 'numpy' must be pinned" in found


def test_yaml_syntax_errors_name_the_line():
    (problem,) = problems("broken.yaml")
    assert problem.startswith(f"{M / 'broken.yaml'}:2: not valid YAML")


def test_missing_file_is_a_clear_error(tmp_path: Path):
    (problem,) = problems_at([tmp_path / "nope.yaml"])
    assert problem == f"{tmp_path / 'nope.yaml'}: no such matrix file"


def test_only_selects_by_glob_and_refuses_a_glob_that_matches_nothing():
    matrix = load_matrix([M / "good.yaml"])
    assert [i.id for i in matrix.select(["*cu121*"])] == ["2.6.0-cu121-py3.11-runtime", "2.6.0-cu121-py3.11-devel"]
    assert [i.id for i in matrix.select(["*cu118*runtime", "*cu121*devel"])] == [
        "2.6.0-cu118-py3.11-runtime",
        "2.6.0-cu121-py3.11-devel",
    ]
    with pytest.raises(ConfigurationError, match="matches no image") as info:
        matrix.select(["*cu999*"])
    assert "2.6.0-cu118-py3.11-runtime" in (info.value.tip or "")


def test_paths_in_a_matrix_are_relative_to_the_file_that_sets_them(tmp_path: Path):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("smoke: my-smoke\n")
    matrix = load_matrix([M / "good.yaml", overlay])
    assert matrix.smoke_dir == tmp_path / "my-smoke"
    assert matrix.templates_dir == M / "templates"
