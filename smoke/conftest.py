"""Smoke-suite fixtures. The suite must run with nothing but pytest and the image's own packages:
no imagekit import, no network.

What an image promises comes from the IMAGEKIT_EXPECT_* variables its Dockerfile bakes in from the
matrix, so the tests never retype versions.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

NO_GPU = "no GPU visible: run with --gpus all"

try:
    import torch as _torch  # noqa: F401
    import torchaudio as _torchaudio  # noqa: F401

    IMPORT_ERROR: BaseException | None = None
except (ImportError, OSError) as exc:  # OSError: a CUDA library torch links against is missing
    IMPORT_ERROR = exc


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without a working torch the model tests cannot even be imported. Leave them out, so the
    environment tests report what is wrong, with the remedy, instead of bare collection errors."""
    if IMPORT_ERROR is not None and collection_path.name.startswith("test_") and collection_path.name != "test_environment.py":
        return True
    return None


def _remedy(what: str) -> str:
    want = os.environ.get(f"IMAGEKIT_EXPECT_{what.upper()}")
    pin = f"=={want}" if want else ""
    return f"in an image, rebuild it with `imagekit build`; on a host, `pip install {what}{pin}` into {sys.executable}"


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
    # Other variants of the same matrix and their driver minimums ("cu118=450.80.02,…"), passed by
    # `imagekit test` so a too-old driver can be told which variant it would run.
    variant_drivers: dict[str, str]


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
        variant_drivers=dict(pair.split("=", 1) for pair in (env("IMAGEKIT_VARIANT_DRIVERS") or "").split(",") if "=" in pair),
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
        pytest.fail(f"torch does not import ({exc}): {_remedy('torch')}")
    return torch


@pytest.fixture(scope="session")
def torchaudio(torch):
    try:
        import torchaudio
    except (ImportError, OSError) as exc:
        pytest.fail(f"torchaudio does not import ({exc}), or not with this torch: {_remedy('torchaudio')}")
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


@pytest.fixture(scope="session")
def cpu(torch):
    return torch.device("cpu")


@pytest.fixture(scope="session")
def figures(output_dir: Path):
    """Every measured figure, written to <output-dir>/timings.json when the session ends."""
    data: dict[str, object] = {}
    yield data
    (output_dir / "timings.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def record(figures, record_testsuite_property) -> Callable[..., None]:
    """Record a figure in timings.json and as a JUnit suite property (the schema-valid place:
    junit-10.xsd has no properties inside a testcase). ``key`` figures are named timing.* and
    appear in the summary table; the rest bench.*."""

    def put(name: str, value: object, *, key: bool = False) -> None:
        figures[name] = value
        record_testsuite_property(f"{'timing' if key else 'bench'}.{name}", str(value))

    return put
