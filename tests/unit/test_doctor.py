"""doctor's judgement of a GPU host: the driver against each variant's minimum. What nvidia-smi
reports comes from a fake probe (adapters.host.Probe) answering for a chosen driver; no docker CLI
is on PATH, and the Docker engine is unreachable on purpose."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagekit.adapters import host
from imagekit.adapters.docker_engine import Engine
from imagekit.core.matrix import load_matrix
from imagekit.stages.doctor import run_checks

MATRIX = Path(__file__).resolve().parent.parent / "matrices" / "product-like.yaml"


def nvidia_smi(driver: str) -> host.Probe:
    """A host whose nvidia-smi lists two A10s on ``driver``; any other tool is missing."""

    def probe(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
        if argv[0] != "nvidia-smi":
            return None
        assert argv[1:] == ["--query-gpu=index,name,driver_version", "--format=csv,noheader"]
        return subprocess.CompletedProcess(argv, 0, f"0, NVIDIA A10, {driver}\n1, NVIDIA A10, {driver}\n", "")

    return probe


@pytest.fixture(autouse=True)
def _no_docker_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("IMAGEKIT_DOCKER", raising=False)


def test_old_driver_runs_cu118_but_not_cu121():
    matrix = load_matrix([MATRIX])
    checks = {c.name: c for c in run_checks(list(matrix.images), Engine(), probe=nvidia_smi("470.82.01"))}
    assert checks["nvidia driver"].ok and "driver 470.82.01; GPUs 0: NVIDIA A10, 1: NVIDIA A10" in checks["nvidia driver"].detail
    assert checks["variant cu118"].ok is True
    assert checks["variant cu121"].ok is False
    assert checks["variant cu121"].detail == "needs driver >= 525.60.13: cannot run on 470.82.01"
    assert "upgrade the driver to >= 525.60.13" in checks["variant cu121"].tip
    assert checks["docker engine"].ok is False and "start the Docker engine" in checks["docker engine"].tip
    assert checks["buildkit"].ok is False and checks["buildkit"].detail == "no docker CLI found on PATH"
    assert "runner labels" not in checks, "labels come with the matrix's ci section"
    checks = {c.name: c for c in run_checks(list(matrix.images), Engine(), matrix.ci, probe=nvidia_smi("470.82.01"))}
    assert checks["runner labels"].detail.endswith("give it: self-hosted, linux, gpu, nvidia-450"), "not nvidia-525: 470 cannot run cu121"


def test_no_nvidia_smi_is_a_cpu_host_not_a_failure():
    (check,) = [c for c in run_checks([], Engine(), probe=lambda argv: None) if c.name == "nvidia driver"]
    assert check.ok is None and "no nvidia-smi" in check.detail
    failing = subprocess.CompletedProcess([], 9, "", "NVIDIA-SMI has failed")
    assert host.nvidia_gpus(lambda argv: failing) is None, "an nvidia-smi that fails is no driver either"


def test_the_real_probe_runs_nothing_that_is_not_there():
    assert host.run_probe(["imagekit-no-such-tool", "--version"]) is None  # found on no PATH: nothing started


def test_doctor_cli_exits_1_and_prints_remedies(imagekit, monkeypatch):
    monkeypatch.setattr(host, "run_probe", nvidia_smi("550.54.14"))  # the one probe every command uses
    out = imagekit("doctor", "--matrix", str(MATRIX), "--only", "*cu121*")
    assert out.returncode == 1
    assert "  ok  variant cu121: needs driver >= 525.60.13: runs on 550.54.14" in out.stderr
    assert "  --  runner labels: as a self-hosted GitHub Actions runner, give it: self-hosted, linux, gpu, nvidia-525" in out.stderr
    assert "variant cu118" not in out.stderr  # --only narrows the variants judged
    assert "FAIL  docker engine: cannot reach the Docker engine" in out.stderr
    assert "FAIL  buildkit: no docker CLI found on PATH" in out.stderr
