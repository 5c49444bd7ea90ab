"""`imagekit doctor`: what this host can do, in plain lines, each failing one with its remedy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import host
from .engine import Engine, find_builder, nvidia_runtime_present
from .errors import ImagekitError
from .facts import version_tuple
from .matrix import Matrix

# A torch 2.6 image is about 6 GB, plus pip's cache and BuildKit's layers while building.
DISK_PER_IMAGE = 10 * 2**30


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: informational (e.g. no GPU on a CPU-only host is not a failure)
    detail: str
    tip: str = ""


def run_checks(matrix: Matrix | None, engine: Engine) -> list[Check]:
    checks: list[Check] = []
    docker_root = Path("/var/lib/docker")
    info: dict = {}
    try:
        version = engine.version()
        info = engine.info()
        docker_root = Path(info.get("DockerRootDir") or docker_root)
        checks.append(
            Check("docker engine", True, f"Engine {version.get('Version')} (API {version.get('ApiVersion')}), {info.get('Driver')} storage")
        )
    except ImagekitError as exc:
        checks.append(Check("docker engine", False, exc.message, exc.tip or ""))
    try:
        checks.append(Check("buildkit", True, find_builder().describe()))
    except ImagekitError as exc:
        checks.append(Check("buildkit", False, exc.message, exc.tip or ""))

    gpus = host.nvidia_gpus()
    if gpus is None:
        checks.append(
            Check("nvidia driver", None, "no nvidia-smi: no NVIDIA driver on this host; images build and test on CPU (GPU tests skip)")
        )
    elif not gpus:
        checks.append(Check("nvidia driver", False, "nvidia-smi found no GPU", "check `nvidia-smi` and the kernel module"))
    else:
        names = ", ".join(f"{g.index}: {g.name}" for g in gpus)
        checks.append(Check("nvidia driver", True, f"driver {gpus[0].driver}; GPUs {names}"))
        if info:
            runtime = nvidia_runtime_present(info)
            checks.append(
                Check(
                    "nvidia runtime",
                    runtime,
                    "Docker can pass GPUs to containers (--gpus)"
                    if runtime
                    else "Docker has no NVIDIA runtime: containers cannot see the GPUs",
                    ""
                    if runtime
                    else "install nvidia-container-toolkit, then `nvidia-ctk runtime configure --runtime=docker` and restart dockerd",
                )
            )
        if matrix is not None:
            driver = gpus[0].driver
            for variant, needed in sorted({(i.variant, i.driver_min) for i in matrix.images}):
                ok = version_tuple(driver) >= version_tuple(needed)
                checks.append(
                    Check(
                        f"variant {variant}",
                        ok,
                        f"needs driver >= {needed}: {'runs' if ok else 'cannot run'} on {driver}",
                        "" if ok else f"upgrade the driver to >= {needed} or use a variant whose minimum this driver meets",
                    )
                )

    free = host.free_bytes(docker_root)
    images = len(matrix.images) if matrix else 1
    enough = free >= DISK_PER_IMAGE * images
    checks.append(
        Check(
            "disk",
            enough,
            f"{free / 2**30:.0f} GiB free under {docker_root}; about {DISK_PER_IMAGE * images / 2**30:.0f} GiB wanted for {images} image(s)",
            "" if enough else "free space (`docker system prune`) or build fewer images with --only",
        )
    )
    return checks
