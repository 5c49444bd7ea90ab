"""Compatibility facts (torch ↔ wheel channels, CUDA ↔ driver), read from data/facts.yaml.

The file ships with imagekit, but a site may patch it (a torch release, a driver) in its own
install: it is read like any input, with the same YAML reader as matrices, held to a declared
shape (`_FactsFile`), and every problem is reported at its file, line and field."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, ValidationError

from imagekit.core import grammar
from imagekit.core.layers import MAX_RULES, Rule, RuleSection, rule_problems
from imagekit.core.source import Key, Origin, field_name, locate, read_yaml
from imagekit.errors import MatrixError

_TIP = "restore imagekit/data/facts.yaml from the imagekit release (reinstall it), or fix the field named, keeping its source in a comment"


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
    cuda_tags: tuple[str, ...]
    cuda_tags_replaced: dict[str, str]
    cuda_os: tuple[str, ...]
    flavor_tag: dict[str, str]
    layers: tuple[Rule, ...] = ()  # the default layer plan

    def driver_needed(self, cuda: str) -> str | None:
        """Oldest driver that runs CUDA ``cuda`` (any precision) under minor-version compatibility."""
        return self.driver_minimum.get(cuda_minor(cuda))


def _held_to(pattern: str, what: str) -> AfterValidator:
    # matrix.held_to, which cannot be imported here: the matrix module imports this one.
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not grammar.full(compiled, value):
            raise ValueError(f"{value[:60]!r} is not {what}")
        return value

    return AfterValidator(check)


# Every value is one that matrix validation compares, splits into numbers (version_tuple) or puts
# into an image reference (nvidia/cuda:<tag>-<flavor tag>-<os>).
_Version = Annotated[StrictStr, _held_to(r"[0-9]{1,4}(?:\.[0-9]{1,4}){1,3}", "a version such as 2.6.0")]
_Python = Annotated[StrictStr, _held_to(r"3\.[0-9]{1,2}", "a Python version such as 3.11")]
_Wheel = Annotated[StrictStr, _held_to(r"[a-z0-9]{1,16}", "a wheel channel such as cu124")]
_CudaMinor = Annotated[StrictStr, _held_to(r"[0-9]{1,3}\.[0-9]{1,3}", "a CUDA minor version such as 12.4")]
_Cuda = Annotated[StrictStr, _held_to(grammar.CUDA.pattern, "a full CUDA version such as 12.1.1")]
_DriverVersion = Annotated[StrictStr, _held_to(grammar.DRIVER.pattern, "a driver version such as 525.60.13")]
_Os = Annotated[StrictStr, _held_to(grammar.OS.pattern, "an OS name like ubuntu22.04")]
_FlavorTag = Annotated[StrictStr, _held_to(r"[a-z0-9][a-z0-9.-]{0,31}", "a part of an nvidia/cuda tag such as base or devel")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Release(_Model):
    torchaudio: _Version
    python: list[_Python] = Field(min_length=1)
    wheels: list[_Wheel] = Field(min_length=1)
    pypi_wheel: _Wheel  # the channel the plain PyPI wheel is built from


class _Drivers(_Model):
    shipped: _DriverVersion  # the driver the toolkit shipped with: recorded with its source, not used
    minimum: _DriverVersion


class _FlavorTags(_Model):
    runtime: _FlavorTag
    devel: _FlavorTag


class _NvidiaCuda(_Model):
    supported: list[_Cuda] = Field(min_length=1)
    replaced: dict[_Cuda, _Cuda]
    os: list[_Os] = Field(min_length=1)
    flavor_tag: _FlavorTags


class _FactsFile(_Model):
    torch: dict[_Version, _Release] = Field(min_length=1)
    wheel_cuda: dict[_Wheel, _CudaMinor]
    drivers: dict[_CudaMinor, _Drivers]
    nvidia_cuda: _NvidiaCuda
    layers: list[RuleSection] = Field(default=[], max_length=MAX_RULES)


def _reference_problems(model: _FactsFile, origin: Callable[[Key], Origin]) -> list[str]:
    """What the shape cannot say: names one section uses must exist in the section that defines
    them (matrix validation looks them up there)."""
    problems = []

    def bad(key: Key, message: str) -> None:
        problems.append(f"{origin(key)}: {field_name(key)}: {message}")

    for version, release in model.torch.items():
        for i, wheel in enumerate(release.wheels):
            if wheel not in model.wheel_cuda:
                bad(("torch", version, "wheels", i), f"the channel {wheel} has no CUDA version in wheel_cuda; add it there")
        if release.pypi_wheel not in release.wheels:
            bad(("torch", version, "pypi_wheel"), f"{release.pypi_wheel} is not one of this release's wheels ({', '.join(release.wheels)})")
    for old, new in model.nvidia_cuda.replaced.items():
        if new not in model.nvidia_cuda.supported:
            bad(("nvidia_cuda", "replaced", old), f"{new} is not among nvidia_cuda.supported")
    for i, name, message in rule_problems(model.layers):
        bad(("layers", i, name), message)
    return problems


def read(path: Path) -> Facts:
    """The facts file at ``path``; a MatrixError (exit 2) naming file, line and field when it is
    not one."""
    subject = f"the facts file {path}"
    try:
        data, origins = read_yaml(path, "facts")
    except MatrixError as exc:
        raise MatrixError(exc.problems, subject=subject, tip=_TIP) from None

    def origin(key: Key) -> Origin:
        return locate(origins, key, Origin(path, 1))

    try:
        model = _FactsFile.model_validate(data)
    except ValidationError as exc:
        # Imported here: the matrix module imports this one, for the facts it validates against.
        from imagekit.core.matrix import validation_problems

        raise MatrixError(validation_problems(exc, _FactsFile, origin), subject=subject, tip=_TIP) from None
    problems = _reference_problems(model, origin)
    if problems:
        raise MatrixError(problems, subject=subject, tip=_TIP)
    nvidia = model.nvidia_cuda
    return Facts(
        torch={v: TorchRelease(v, r.torchaudio, tuple(r.python), tuple(r.wheels), r.pypi_wheel) for v, r in model.torch.items()},
        wheel_cuda=dict(model.wheel_cuda),
        driver_minimum={c: d.minimum for c, d in model.drivers.items()},
        cuda_tags=tuple(nvidia.supported),
        cuda_tags_replaced=dict(nvidia.replaced),
        cuda_os=tuple(nvidia.os),
        flavor_tag=nvidia.flavor_tag.model_dump(),
        layers=tuple(section.rule() for section in model.layers),
    )


@cache
def load() -> Facts:
    """The facts imagekit ships (or a site patched into its install)."""
    with resources.as_file(resources.files("imagekit").joinpath("data/facts.yaml")) as path:
        return read(path)
