"""Compatibility facts (torch ↔ wheel channels, CUDA ↔ driver), read from data/facts.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def cuda_minor(version: str) -> str:
    """``12.1.1`` → ``12.1``."""
    return ".".join(version.split(".")[:2])


@dataclass(frozen=True)
class TorchRelease:
    version: str
    torchaudio: str
    python: tuple[str, ...]
    wheels: tuple[str, ...]
    pypi_wheel: str


@dataclass(frozen=True)
class Facts:
    torch: dict[str, TorchRelease]
    wheel_cuda: dict[str, str]
    driver_minimum: dict[str, str]
    driver_shipped: dict[str, str]
    cuda_tags: tuple[str, ...]
    cuda_tags_replaced: dict[str, str]
    cuda_os: tuple[str, ...]
    flavor_tag: dict[str, str]

    def driver_needed(self, cuda: str) -> str | None:
        """Oldest driver that runs CUDA ``cuda`` (any precision) under minor-version compatibility."""
        return self.driver_minimum.get(cuda_minor(cuda))


@cache
def load() -> Facts:
    raw: dict[str, Any] = yaml.safe_load(resources.files("imagekit").joinpath("data/facts.yaml").read_text())
    return Facts(
        torch={
            v: TorchRelease(v, r["torchaudio"], tuple(r["python"]), tuple(r["wheels"]), r["pypi_wheel"]) for v, r in raw["torch"].items()
        },
        wheel_cuda=dict(raw["wheel_cuda"]),
        driver_minimum={c: d["minimum"] for c, d in raw["drivers"].items()},
        driver_shipped={c: d["shipped"] for c, d in raw["drivers"].items()},
        cuda_tags=tuple(raw["nvidia_cuda"]["supported"]),
        cuda_tags_replaced=dict(raw["nvidia_cuda"]["replaced"]),
        cuda_os=tuple(raw["nvidia_cuda"]["os"]),
        flavor_tag=dict(raw["nvidia_cuda"]["flavor_tag"]),
    )
