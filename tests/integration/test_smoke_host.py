"""`imagekit smoke` on a CPU-only host with a real torch 2.6.0 + torchaudio 2.6.0 (PyPI's cu124
build) in a fresh virtualenv: the suite passes, GPU checks skip with their reason, and the reports
validate. Deselect locally with `-m 'not host_torch'` (it downloads about 2.5 GB)."""

from __future__ import annotations

import json
import shutil
import subprocess
import venv
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import xmllint_schema

pytestmark = pytest.mark.host_torch

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def torch_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    env_dir = tmp_path_factory.mktemp("host-torch") / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-cache-dir", "torch==2.6.0", "torchaudio==2.6.0",
         "numpy==2.2.6", "pytest==8.3.5", "-e", str(ROOT)],
        check=True, timeout=1500,
    )  # fmt: skip
    yield python
    # 5 GB of torch: gone before the other modules on this worker build their images.
    shutil.rmtree(env_dir)


@pytest.mark.tool("xmllint")
def test_smoke_passes_on_a_cpu_host_against_an_image_promise(torch_python, tmp_path):
    reports = tmp_path / "reports"
    out = subprocess.run(
        [str(torch_python), "-m", "imagekit", "smoke", "--only", "*cu121*runtime", "--reports", str(reports)],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    xmllint_schema(reports / "junit.xml")
    cases = {c.get("name"): c for c in ET.parse(reports / "junit" / "host.xml").iter("testcase")}
    assert cases["test_torch_version"].find("skipped") is None, "the promise from --only must be checked, not skipped"
    assert cases["test_training_learns"].find("skipped") is None and cases["test_training_learns"].find("failure") is None
    skipped = [c.find("skipped").get("message") for c in cases.values() if c.find("skipped") is not None]
    assert skipped and all("no GPU visible: run with --gpus all" in m for m in skipped)
    figures = json.loads((reports / "artifacts" / "host" / "timings.json").read_text())
    assert figures["train.accuracy"] >= 0.9 and figures["forward.cpu.b4.median_ms"] > 0


def test_plain_pytest_runs_the_same_suite_without_imagekit(torch_python, tmp_path):
    out = subprocess.run(
        [str(torch_python), "-m", "pytest", str(ROOT / "smoke" / "test_environment.py"), "--output-dir", str(tmp_path), "-q", "-rs"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    # No image, no --only: nothing is promised, so the version checks skip with that reason.
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no expected torch version: not inside an imagekit image" in out.stdout
    assert "1 passed" in out.stdout  # cuDNN loads from the wheels even without a GPU
