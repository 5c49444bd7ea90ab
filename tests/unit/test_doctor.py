"""doctor's judgement of a GPU host: the driver against each variant's minimum. What nvidia-smi
reports comes from a fake probe (adapters.host.Probe) answering for a chosen driver; the builder
finds no docker CLI among none, and the Docker engine is unreachable on purpose."""

from __future__ import annotations

import subprocess
from pathlib import Path

from imagekit.adapters import host
from imagekit.adapters.buildkit import BuildProcesses, find_builder
from imagekit.adapters.docker_engine import Engine
from imagekit.cli.common import Adapters
from imagekit.core.matrix import load_matrix
from imagekit.errors import ConfigurationError
from imagekit.outcomes import Finding
from imagekit.stages import doctor

MATRIX = Path(__file__).resolve().parent.parent / "matrices" / "product-like.yaml"


def nvidia_smi(driver: str) -> host.Probe:
    """A host whose nvidia-smi lists two A10s on ``driver``; any other tool is missing."""

    def probe(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
        if argv[0] != "nvidia-smi":
            return None
        assert argv[1:] == ["--query-gpu=index,name,driver_version", "--format=csv,noheader"]
        return subprocess.CompletedProcess(argv, 0, f"0, NVIDIA A10, {driver}\n1, NVIDIA A10, {driver}\n", "")

    return probe


def run_checks(images, probe, ci=None):
    """doctor's checks with no docker CLI to find and an engine that does not answer."""
    return {c.name: c for c in doctor.run_checks(images, Engine(), lambda: find_builder(probe, clis=[]), BuildProcesses(), probe, ci)}


def test_old_driver_runs_cu118_but_not_cu121():
    matrix = load_matrix([MATRIX])
    checks = run_checks(list(matrix.images), nvidia_smi("470.82.01"))
    assert checks["nvidia driver"].state is Finding.OK
    assert "driver 470.82.01; GPUs 0: NVIDIA A10, 1: NVIDIA A10" in checks["nvidia driver"].detail
    assert checks["variant cu118"].state is Finding.OK
    assert checks["variant cu121"].state is Finding.FAIL
    assert checks["variant cu121"].detail == "needs driver >= 525.60.13: cannot run on 470.82.01"
    assert "upgrade the driver to >= 525.60.13" in checks["variant cu121"].tip
    assert checks["docker engine"].state is Finding.FAIL and "start the Docker engine" in checks["docker engine"].tip
    assert checks["buildkit"].state is Finding.FAIL and checks["buildkit"].detail == "no docker CLI found on PATH"
    assert "runner labels" not in checks, "labels come with the matrix's ci section"
    checks = run_checks(list(matrix.images), nvidia_smi("470.82.01"), matrix.ci)
    assert checks["runner labels"].detail.endswith("labels (gpu: self-hosted, linux, gpu) and: nvidia-450"), (
        "not nvidia-525: 470 cannot run cu121"
    )


def test_no_nvidia_smi_is_a_cpu_host_not_a_failure():
    check = run_checks([], lambda argv: None)["nvidia driver"]
    assert check.state is Finding.INFO and check.state.ok and "no nvidia-smi" in check.detail
    failing = subprocess.CompletedProcess([], 9, "", "NVIDIA-SMI has failed")
    assert host.nvidia_gpus(lambda argv: failing) is None, "an nvidia-smi that fails is no driver either"


def test_the_real_probe_runs_nothing_that_is_not_there():
    assert host.run_probe(["imagekit-no-such-tool", "--version"]) is None  # found on no PATH: nothing started


def test_doctor_cli_exits_1_and_prints_remedies(imagekit):
    fakes = Adapters(probe=nvidia_smi("550.54.14"), builder=lambda probe: find_builder(probe, clis=[]))
    out = imagekit("doctor", "--matrix", str(MATRIX), "--only", "*cu121*", adapters=fakes)
    assert out.returncode == 1
    assert "ERROR 2 of 7 check(s) failed: docker engine, buildkit" in out.stderr
    assert "  --  signing: off: IMAGEKIT_SIGNING_KEY is not set" in out.stderr
    assert "  ok  variant cu121: needs driver >= 525.60.13: runs on 550.54.14" in out.stderr
    assert (
        "  --  runner labels: as a self-hosted GitHub Actions test runner, give it its runner class's labels (gpu: self-hosted, linux, gpu) and: nvidia-525"
        in out.stderr
    )
    assert "variant cu118" not in out.stderr  # --only narrows the variants judged
    assert "FAIL  docker engine: cannot reach the Docker engine" in out.stderr
    assert "FAIL  buildkit: no docker CLI found on PATH" in out.stderr


def test_signing_says_what_it_uses_and_what_no_transparency_log_trades_away():
    def missing() -> str:
        raise ConfigurationError("cosign (cosign) is not installed here", tip="install cosign")

    found = doctor.signing_check(True, lambda: "cosign 3.x (/usr/bin/cosign), key /keys/cosign.key")
    assert found.state is Finding.OK and "cosign 3.x" in found.detail and "no transparency log" in found.detail
    failed = doctor.signing_check(True, missing)
    assert failed.state is Finding.FAIL and failed.tip == "install cosign"
    assert doctor.signing_check(False, missing).state is Finding.INFO
