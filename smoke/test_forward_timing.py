"""Audio-CNN forward latency per batch size on CPU and GPU, and the CUDA-graph launch floor.

Figures are recorded (JUnit suite properties and timings.json), never asserted against a clock.
What is asserted: the GPU path runs on the GPU and computes what the CPU computes.
Method: see README "Benchmark method".
"""

from __future__ import annotations

import pytest
from smokelib.audio import AudioCNN
from smokelib.timing import graph_replay, measure

BATCHES = (1, 4, 16, 64)


@pytest.fixture(scope="module")
def model(torch):
    torch.manual_seed(0)
    return AudioCNN().eval()


@pytest.fixture(scope="module")
def cpu_timings(torch, model, cpu):
    out = {}
    for batch in BATCHES:
        x = torch.randn(batch, 1, 64, 64)
        with torch.inference_mode():
            out[batch] = measure(lambda x=x: model(x), cpu, warmup=3, min_iters=10, budget_s=0.5)
    return out


def test_cpu_forward_timing(torch, cpu_timings, record):
    record("cpu.threads", torch.get_num_threads())
    for batch, t in cpu_timings.items():
        record(f"forward.cpu.b{batch}.median_ms", round(t.median_ms, 3), key=batch == 4)
        record(f"forward.cpu.b{batch}.p90_ms", round(t.p90_ms, 3))
        record(f"forward.cpu.b{batch}.samples_per_s", round(batch / t.median_ms * 1e3, 1))
        record(f"forward.cpu.b{batch}.iterations", len(t.samples_ms))


def test_gpu_forward_matches_cpu_and_is_timed(torch, model, gpu, cpu_timings, record):
    on_gpu = AudioCNN().to(gpu).eval()
    on_gpu.load_state_dict(model.state_dict())
    for batch in BATCHES:
        x = torch.randn(batch, 1, 64, 64)
        with torch.inference_mode():
            want, got = model(x), on_gpu(x.to(gpu))
        assert got.device.type == "cuda", "the forward did not run on the GPU"
        # cuDNN may pick TF32 convolutions on Ampere and newer: compare at TF32-sized tolerance.
        torch.testing.assert_close(got.cpu(), want, rtol=1e-2, atol=1e-2)

        xg = x.to(gpu)
        with torch.inference_mode():
            eager = measure(lambda xg=xg: on_gpu(xg), gpu, warmup=10, min_iters=50, budget_s=1.0)
        floor = measure(graph_replay(on_gpu, xg), gpu, warmup=10, min_iters=50, budget_s=1.0)
        record(f"forward.gpu.b{batch}.median_ms", round(eager.median_ms, 4), key=batch == 4)
        record(f"forward.gpu.b{batch}.p90_ms", round(eager.p90_ms, 4))
        record(f"forward.gpu.b{batch}.samples_per_s", round(batch / eager.median_ms * 1e3, 1))
        record(f"forward.gpu.b{batch}.graph_median_ms", round(floor.median_ms, 4))
        record(f"forward.gpu.b{batch}.eager_over_graph", round(eager.median_ms / floor.median_ms, 2))
        record(f"forward.b{batch}.gpu_speedup", round(cpu_timings[batch].median_ms / eager.median_ms, 1), key=batch == 4)
