"""Smoke-suite fixtures. The suite must run with nothing but pytest and the image's own packages:
no imagekit import, no network.

What an image promises comes from the IMAGEKIT_EXPECT_* variables its Dockerfile bakes in from the
matrix, so the tests never retype versions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

NO_GPU = "no GPU visible: run with --gpus all"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("imagekit smoke")
    group.addoption("--require-gpu", action="store_true", help="fail, rather than skip, GPU checks when no GPU is visible")
    group.addoption("--output-dir", default=None, help="where tests write artifacts (checkpoints, timings)")


@dataclass(frozen=True)
class Expected:
    image_id: str | None
    torch: str | None
    torchaudio: str | None
    python: str | None
    cuda: str | None
    driver_min: str | None


@pytest.fixture(scope="session")
def expected() -> Expected:
    env = os.environ.get
    return Expected(
        image_id=env("IMAGEKIT_IMAGE_ID"),
        torch=env("IMAGEKIT_EXPECT_TORCH"),
        torchaudio=env("IMAGEKIT_EXPECT_TORCHAUDIO"),
        python=env("IMAGEKIT_EXPECT_PYTHON"),
        cuda=env("IMAGEKIT_EXPECT_CUDA"),
        driver_min=env("IMAGEKIT_EXPECT_DRIVER_MIN"),
    )


def promised(value: str | None, what: str) -> str:
    """The expected value, or a skip when this environment promises nothing (a bare host)."""
    if value is None:
        pytest.skip(f"no expected {what}: not inside an imagekit image (IMAGEKIT_EXPECT_* unset)")
    return value


@pytest.fixture(scope="session")
def torch():
    try:
        import torch
    except (ImportError, OSError) as exc:
        pytest.fail(f"torch does not import ({exc}): the image lacks torch or its libraries; rebuild it with `imagekit build`")
    return torch


@pytest.fixture(scope="session")
def torchaudio(torch):
    try:
        import torchaudio
    except (ImportError, OSError) as exc:
        pytest.fail(f"torchaudio does not import ({exc}): it is missing or built for another torch; rebuild the image")
    return torchaudio


@pytest.fixture(scope="session")
def gpu(torch, request: pytest.FixtureRequest):
    """The first CUDA device; skips (or fails under --require-gpu) when none is visible."""
    if not torch.cuda.is_available():
        if request.config.getoption("--require-gpu"):
            pytest.fail(
                f"{NO_GPU}; --require-gpu was given, so this is a failure (check `nvidia-smi` on the host and the NVIDIA container toolkit)"
            )
        pytest.skip(NO_GPU)
    return torch.device("cuda", 0)


@pytest.fixture(scope="session")
def output_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = request.config.getoption("--output-dir")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("smoke-out")
    path.mkdir(parents=True, exist_ok=True)
    return path
