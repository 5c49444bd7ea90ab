"""GPU detection: the devices torch sees, and that they compute what the CPU computes."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import promised


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def test_gpu_detected(torch, gpu, record_testsuite_property):
    count = torch.cuda.device_count()
    assert count >= 1
    record_testsuite_property("gpu.count", str(count))
    for i in range(count):
        props = torch.cuda.get_device_properties(i)
        record_testsuite_property(f"gpu.{i}.name", props.name)
        record_testsuite_property(f"gpu.{i}.capability", f"{props.major}.{props.minor}")
        record_testsuite_property(f"gpu.{i}.memory_gib", f"{props.total_memory / 2**30:.1f}")
        assert props.total_memory > 0, f"GPU {i} ({props.name}) reports no memory"


def test_gpu_matches_cpu(torch, gpu):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(256, 256, generator=gen)
    b = torch.randn(256, 256, generator=gen)
    on_gpu = (a.to(gpu) @ b.to(gpu)).cpu()
    assert on_gpu.device.type == "cpu"
    torch.testing.assert_close(on_gpu, a @ b, rtol=1e-3, atol=1e-3)


def test_gpu_arch_supported(torch, gpu):
    major, minor = torch.cuda.get_device_capability(gpu)
    archs = torch.cuda.get_arch_list()
    # Entries look like sm_80 or sm_90a (arch-specific features); the digits name the capability.
    have = {int("".join(ch for ch in a.split("_")[1] if ch.isdigit())) for a in archs if a.startswith("sm_")}
    assert major * 10 + minor in have or any(a.startswith("compute_") for a in archs), (
        f"this torch build has kernels for {', '.join(archs)}, not for the GPU's sm_{major}{minor}: pick a newer wheel channel"
    )


def test_driver_new_enough(gpu, expected, record_testsuite_property):
    needed = promised(expected.driver_min, "driver minimum")
    smi = shutil.which("nvidia-smi")
    if smi is None:
        pytest.skip("nvidia-smi not in the container: run with NVIDIA_DRIVER_CAPABILITIES including utility")
    driver = subprocess.run(
        [smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    record_testsuite_property("gpu.driver", driver)
    if _version(driver) >= _version(needed):
        return
    runs = sorted(
        (v for v, d in expected.variant_drivers.items() if _version(driver) >= _version(d)), key=lambda v: expected.variant_drivers[v]
    )
    instead = f"; on this driver use the {' or '.join(runs)} variant instead" if runs else "; no variant of this matrix runs on it"
    pytest.fail(
        f"host driver {driver} is older than {needed}, the minimum for this image (CUDA {expected.cuda}): upgrade the driver to >= {needed}{instead}"
    )
