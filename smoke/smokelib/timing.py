"""Timing done right: warm-up first, synchronise around the timed region (CUDA events on a GPU),
many iterations, then median and p90. Figures are recorded, never asserted: machines are noisy."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    samples_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def measure(fn: Callable[[], object], device: torch.device, *, warmup: int = 5, min_iters: int = 20, budget_s: float = 1.0) -> Timing:
    """Time ``fn`` per call: ``warmup`` untimed calls, then at least ``min_iters`` timed ones and
    more while the time budget lasts (up to 1000)."""
    cuda = device.type == "cuda"
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < min_iters or (time.perf_counter() < deadline and len(samples) < 1000):
        if cuda:
            # Events on the stream time the GPU work itself, not the Python launching it.
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return Timing(tuple(samples))


def graph_replay(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """The same forward captured once in a CUDA graph: replaying it launches all kernels at once,
    which is the launch-overhead floor the eager forward is compared with."""
    static_x = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):  # warm up on a side stream, as graph capture requires
            model(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        model(static_x)
    return graph.replay
