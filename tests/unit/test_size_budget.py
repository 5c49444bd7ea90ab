"""What a build says about an image over its size budget: by how much, where the budget was set,
and the largest layers and packages, each layer named by the instruction that made it."""

from __future__ import annotations

from test_package_manifest import GIT, PROTOBUF, TORCH, manifest

from imagekit.core.budget import over_budget
from imagekit.core.matrix import SizeBudget

BUDGET = SizeBudget(6_000_000_000, "matrix.yaml:20: size_budgets.*-runtime")
LAYERS = [
    (169_000_000, "/bin/sh -c #(nop) ADD file:abc in / "),
    (
        5_610_000_000,
        "RUN /bin/bash -o pipefail -c SOURCE_DATE_EPOCH=0 PIP_CONFIG_FILE=/run/secrets/pip.conf /opt/venv/bin/pip install "
        + "--progress-bar off " * 8
        + "--require-hashes --no-deps -r /run/imagekit/requirements-cuda.txt # buildkit",
    ),
    (0, "USER 1000"),
]


def test_within_budget_says_nothing():
    assert over_budget(6_000_000_000, BUDGET, LAYERS, manifest(TORCH)) == []


def test_over_budget_lists_the_largest_layers_and_packages_first():
    lines = over_budget(6_100_000_000, BUDGET, LAYERS, manifest(PROTOBUF, GIT, TORCH))
    assert lines[0] == "6.10 GB is over its size budget of 6.00 GB by 100.00 MB (budget: matrix.yaml:20: size_budgets.*-runtime)"
    assert lines[1] == "largest layers:"
    # Long steps are cut in the middle: a pip step's end names the layer it installs.
    assert lines[2].startswith("     5.61 GB  RUN SOURCE_DATE_EPOCH=0 PIP_CONFIG_FILE=/run/secrets/")
    assert " … " in lines[2] and lines[2].endswith("--require-hashes --no-deps -r /run/imagekit/requirements-cuda.txt")
    assert len(lines[2]) <= 14 + 140
    assert lines[3] == "   169.00 MB  ADD file:abc in /"
    assert lines[5:] == [
        "largest packages:",
        "     1.59 GB  pip torch 2.6.0",
        "    45.97 MB  apt git 1:2.39.5-0+deb12u3",
        "     2.28 MB  pip protobuf 5.29.3",
    ]


def test_an_image_without_a_manifest_still_gets_its_layers():
    lines = over_budget(7_000_000_000, BUDGET, LAYERS, "no package manifest")
    assert "largest layers:" in lines and lines[-1] == "largest packages: unknown (no package manifest)"
