"""matrix.yaml → validated model: merge rules, selection, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagekit.core.matrix import load_matrix
from imagekit.errors import ConfigurationError, MatrixError

M = Path(__file__).resolve().parent.parent / "matrices"
ROOT = M.parent.parent


def problems(*names: str) -> list[str]:
    with pytest.raises(MatrixError) as info:
        load_matrix([M / n for n in names])
    return info.value.problems


# The product's own matrix.yaml, on purpose: its shape is the product's to keep (as the golden
# Dockerfiles of test_render.py are). Other unit tests use tests/matrices/product-like.yaml.
def test_project_matrix_defines_runtime_and_devel_for_both_cuda_variants_and_tracking_and_jupyter_extensions():
    matrix = load_matrix([ROOT / "matrix.yaml"])
    assert [i.id for i in matrix.images] == [
        "2.6.0-cu118-py3.11-runtime",
        "2.6.0-cu118-py3.11-devel",
        "2.6.0-cu121-py3.11-runtime",
        "2.6.0-cu121-py3.11-devel",
        "2.6.0-cu118-py3.11-runtime-tracking",
        "2.6.0-cu121-py3.11-runtime-tracking",
        "2.6.0-cu118-py3.11-runtime-jupyter",
        "2.6.0-cu121-py3.11-runtime-jupyter",
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
    assert image.index_url.startswith("https://${IMAGEKIT_INDEX_USER}:${IMAGEKIT_INDEX_TOKEN}@")
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


def test_paths_in_a_matrix_are_relative_to_the_file_that_sets_them(project_dir: Path):
    overlay = project_dir / "o.yaml"
    overlay.write_text("smoke: my-smoke\n")
    matrix = load_matrix([M / "good.yaml", overlay])
    assert matrix.smoke_dir == project_dir / "my-smoke"
    assert matrix.templates_dir == M / "templates"


def test_paths_must_stay_inside_the_project(tmp_path: Path, project_dir: Path):
    """The project is the git work tree of the first matrix file; an overlay from elsewhere may
    not point templates, snippets or tests out of it, by path or by symlink."""
    overlay = tmp_path / "o.yaml"
    overlay.write_text("smoke: my-smoke\n")
    (problem,) = problems_at([M / "good.yaml", overlay])
    assert problem.startswith(f"{overlay}:1: smoke: 'my-smoke' leads to {tmp_path / 'my-smoke'}, outside the project {ROOT}")
    (project_dir / "link").symlink_to(tmp_path)
    overlay.write_text(f"templates: {project_dir / 'link'}\n")
    (problem,) = problems_at([M / "good.yaml", overlay])
    assert problem.startswith(f"{overlay}:1: templates: ") and f"leads to {tmp_path}, outside the project" in problem


def test_extensions_expand_per_parent_after_every_base_image():
    matrix = load_matrix([M / "good.yaml", M / "extensions.yaml"])
    base = [i for i in matrix.images if i.extension is None]
    children = {i.id: i for i in matrix.images if i.extension is not None}
    assert matrix.images[: len(base)] == tuple(base), "parents come first in matrix order"
    assert sorted(children) == [
        "2.6.0-cu118-py3.11-runtime-tracking",
        "2.6.0-cu121-py3.11-devel-jupyter",
        "2.6.0-cu121-py3.11-runtime-tracking",
    ]
    tracking = children["2.6.0-cu121-py3.11-runtime-tracking"]
    assert tracking.parent == "2.6.0-cu121-py3.11-runtime"
    assert tracking.base_image == "example/pytorch:2.6.0-cu121-py3.11-runtime"
    assert (tracking.cuda, tracking.wheel, tracking.driver_min) == ("12.1.1", "cu124", "525.60.13")  # inherited
    assert tracking.extension.env == (("TRACKING_LOGDIR", "/opt/runs"), ("QUOTED", 'say "hi" \\ $HOME'))
    assert tracking.extension.snippet.startswith("RUN echo") and tracking.extension.snippet_name == "ext/snippet.Dockerfile.j2"
    assert children["2.6.0-cu121-py3.11-devel-jupyter"].tag == "example/notebooks:2.6.0-cu121-py3.11-devel-jupyter"
    assert matrix.extension_tests == {i: M / "ext" / "tests" for i in children if i.endswith("tracking")}


def test_content_entry_of_an_extension_holds_no_host_path_and_base_entries_are_unchanged():
    plain = {i.id: i.entry() for i in load_matrix([M / "good.yaml"]).images}
    extended = load_matrix([M / "good.yaml", M / "extensions.yaml"])
    assert {i.id: i.entry() for i in extended.images if i.parent is None} == plain
    entry = extended.image("2.6.0-cu121-py3.11-runtime-tracking").entry()
    assert str(M) not in repr(entry)


def test_only_with_parents_adds_the_parent_of_a_selected_extension():
    matrix = load_matrix([M / "good.yaml", M / "extensions.yaml"])
    assert [i.id for i in matrix.select(["*jupyter"])] == ["2.6.0-cu121-py3.11-devel-jupyter"]
    assert [i.id for i in matrix.select(["*jupyter"], with_parents=True)] == [
        "2.6.0-cu121-py3.11-devel",
        "2.6.0-cu121-py3.11-devel-jupyter",
    ]


def test_extension_mistakes_are_all_reported_at_their_lines():
    # First the grammar of every field, then, once every field has its shape, what they mean together.
    f = M / "extensions-bad.yaml"
    assert problems("good.yaml", "extensions-bad.yaml") == [
        f"{f}:3: extensions.Bad: 'Bad' is not a name of lowercase letters, digits, '.', '_' or '-' (at most 40; it becomes part of image tags)",
        f"{f}:5: extensions.Bad.packages.0: 'wandb' is not pinned as name==version (a PEP 440 version in normal form) so images rebuild to the same content",
        f"{f}:6: extensions.Bad.apt.0: 'git;rm' is not a Debian package name, optionally pinned as name=version",
        f"{f}:7: extensions.Bad.env.1BAD: '1BAD' is not an environment variable name: letters, digits and '_', not starting with a digit",
    ]
    f, ext = M / "extensions-facts.yaml", M / "ext"
    assert problems("good.yaml", "extensions-facts.yaml") == [
        f"{f}:4: extensions.bad.parent: '*-cu999-*' matches no image; name a flavor (runtime, devel) or an id glob over: "
        "2.6.0-cu118-py3.11-runtime, 2.6.0-cu118-py3.11-devel, 2.6.0-cu121-py3.11-runtime, 2.6.0-cu121-py3.11-devel",
        f"{f}:5: extensions.bad.packages.0: the parent already installs torch==2.6.0; an extension cannot change it",
        f"{f}:5: extensions.bad.packages.1: the parent already installs pytest==8.3.5; an extension cannot change it",
        f"{f}:6: extensions.bad.env.IMAGEKIT_IMAGE_ID: IMAGEKIT_* variables are what the image promises to the smoke suite; imagekit sets them",
        f"{f}:7: extensions.bad.template: {ext / 'missing.j2'} is not a file",
        f"{f}:8: extensions.bad.tests: {ext / 'clash' / 'test_environment.py'} has the same name as a smoke test; rename it",
        f"{f}:11: extensions.ok.tests: {ext / 'snippet.Dockerfile.j2'} holds no test_*.py files",
    ]


def test_unknown_extension_key_is_refused_with_a_suggestion(tmp_path: Path):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("extensions:\n  x:\n    parent: runtime\n    pakages: []\n")
    assert problems_at([M / "good.yaml", overlay]) == [f"{overlay}:4: extensions.x.pakages: unknown key (did you mean 'packages'?)"]


def test_size_budgets_take_sizes_with_units_and_each_image_gets_its_tightest(tmp_path: Path):
    overlay = tmp_path / "budgets.yaml"
    overlay.write_text('size_budgets:\n  "*-runtime": 6.5GB\n  "*cu121*": "6GiB"\n  "*-devel": 14000000000\n')
    matrix = load_matrix([M / "good.yaml", overlay])
    budgets = {i: (b.limit, b.where) for i, b in matrix.size_budgets.items()}
    assert budgets["2.6.0-cu118-py3.11-runtime"] == (6_500_000_000, f"{overlay}:2: size_budgets.*-runtime")
    assert budgets["2.6.0-cu121-py3.11-runtime"] == (6 * 2**30, f"{overlay}:3: size_budgets.*cu121*")
    assert budgets["2.6.0-cu118-py3.11-devel"][0] == 14_000_000_000
    assert budgets["2.6.0-cu121-py3.11-devel"][0] == 6 * 2**30
    # A budget checks the image; it is not part of what the image contains.
    plain = load_matrix([M / "good.yaml"])
    assert [i.entry() for i in plain.images] == [i.entry() for i in matrix.images]


def test_size_budget_mistakes_name_the_line_and_the_remedy(tmp_path: Path):
    overlay = tmp_path / "budgets.yaml"
    overlay.write_text('size_budgets:\n  "*-runtime": 6.5 gigs\n  "*-cu999-*": 7GB\n')
    f = overlay
    assert problems_at([M / "good.yaml", overlay]) == [
        f"{f}:2: size_budgets.*-runtime: '6.5 gigs' is not a size; write bytes or a number with a unit, like 7GB or 6.5GiB",
    ]
    # A glob that matches nothing is not an error (an overlay may remove the images it was for), but it is said.
    overlay.write_text('size_budgets:\n  "*-cu999-*": 7GB\n')
    assert load_matrix([M / "good.yaml", overlay]).notes == (
        f"{f}:2: size_budgets.*-cu999-*: matches no image, so it checks nothing; image ids are: 2.6.0-cu118-py3.11-runtime, "
        "2.6.0-cu118-py3.11-devel, 2.6.0-cu121-py3.11-runtime, 2.6.0-cu121-py3.11-devel",
    )


def test_ci_runner_labels_are_checked_at_their_lines(tmp_path: Path):
    overlay = tmp_path / "ci.yaml"
    overlay.write_text('ci:\n  runs_on: [self-hosted, "gpu box"]\n  driver_label: nvidia\n  timeout_minutes: 0\n')
    assert problems_at([M / "good.yaml", overlay]) == [
        f"{overlay}:2: ci.runs_on.1: 'gpu box' is not a runner label (letters, digits, '.', '_', '-')",
        f"{overlay}:3: ci.driver_label: 'nvidia' is not a runner label with {{branch}} where the driver branch goes, like nvidia-{{branch}} (or null for none)",
        f"{overlay}:4: ci.timeout_minutes: Input should be greater than or equal to 1",
    ]
    overlay.write_text('ci:\n  runs_on: [self-hosted, "gpu box"]\n  driver_label: nvidia\n')
    assert problems_at([M / "good.yaml", overlay]) == [
        f"{overlay}:2: ci.runs_on.1: 'gpu box' is not a runner label (letters, digits, '.', '_', '-')",
        f"{overlay}:3: ci.driver_label: 'nvidia' is not a runner label with {{branch}} where the driver branch goes, like nvidia-{{branch}} (or null for none)",
    ]
    overlay.write_text("ci:\n  runs_on: [self-hosted, cpu]\n  classes: {a100: {runs_on: [self-hosted, a100]}}\n  driver_label: null\n")
    matrix = load_matrix([M / "good.yaml", overlay])
    assert matrix.ci.labels(matrix.images[0], "a100") == ["self-hosted", "a100"] and matrix.ci.runs_on == ("self-hosted", "cpu")
    overlay.write_text("ci:\n  classes: {a100: {runs_on: [self-hosted, a100, nvidia-525]}}\n")
    matrix = load_matrix([M / "good.yaml", overlay])
    assert matrix.ci.labels(next(i for i in matrix.images if i.variant == "cu121"), "a100") == ["self-hosted", "a100", "nvidia-525"]
