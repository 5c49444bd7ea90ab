"""doctor's judgement of a GPU host: the driver against each variant's minimum. nvidia-smi here is a
stand-in script on PATH reporting a chosen driver; the Docker engine is unreachable on purpose."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from imagekit.adapters.docker_engine import Engine
from imagekit.core.matrix import load_matrix
from imagekit.stages.doctor import run_checks

ROOT = Path(__file__).resolve().parent.parent.parent


def fake_nvidia_smi(folder: Path, driver: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(f'#!/bin/sh\necho "0, NVIDIA A10, {driver}"\necho "1, NVIDIA A10, {driver}"\n')
    script.chmod(0o755)


def test_old_driver_runs_cu118_but_not_cu121(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, "470.82.01")
    monkeypatch.setenv("PATH", str(tmp_path))
    checks = {c.name: c for c in run_checks(list(load_matrix([ROOT / "matrix.yaml"]).images), Engine())}
    assert checks["nvidia driver"].ok and "driver 470.82.01; GPUs 0: NVIDIA A10, 1: NVIDIA A10" in checks["nvidia driver"].detail
    assert checks["variant cu118"].ok is True
    assert checks["variant cu121"].ok is False
    assert checks["variant cu121"].detail == "needs driver >= 525.60.13: cannot run on 470.82.01"
    assert "upgrade the driver to >= 525.60.13" in checks["variant cu121"].tip
    assert checks["docker engine"].ok is False and "start the Docker engine" in checks["docker engine"].tip
    assert checks["buildkit"].ok is False
    assert "runner labels" not in checks, "labels come with the matrix's ci section"
    matrix = load_matrix([ROOT / "matrix.yaml"])
    checks = {c.name: c for c in run_checks(list(matrix.images), Engine(), matrix.ci)}
    assert checks["runner labels"].detail.endswith("give it: self-hosted, linux, gpu, nvidia-450"), "not nvidia-525: 470 cannot run cu121"


def test_doctor_cli_exits_1_and_prints_remedies(tmp_path):
    fake_nvidia_smi(tmp_path / "bin", "550.54.14")
    env = {"PATH": str(tmp_path / "bin"), "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    out = subprocess.run(
        [sys.executable, "-m", "imagekit", "doctor", "--only", "*cu121*"], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert out.returncode == 1
    assert "  ok  variant cu121: needs driver >= 525.60.13: runs on 550.54.14" in out.stderr
    assert "  --  runner labels: as a self-hosted GitHub Actions runner, give it: self-hosted, linux, gpu, nvidia-525" in out.stderr
    assert "variant cu118" not in out.stderr  # --only narrows the variants judged
    assert "FAIL  docker engine: cannot reach the Docker engine" in out.stderr
    assert "Traceback" not in out.stderr
