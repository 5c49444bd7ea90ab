"""`imagekit doctor`: what this host can do, in plain lines, each failing one with its remedy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagekit.adapters import host
from imagekit.adapters.buildkit import Builder
from imagekit.adapters.docker_engine import nvidia_runtime_present
from imagekit.core.facts import version_tuple
from imagekit.core.matrix import CiSpec, ImageSpec
from imagekit.errors import ImagekitError
from imagekit.outcomes import Finding
from imagekit.stages import reproducibility
from imagekit.stages.ports import BuildRunner, Engine

# A torch 2.6 image is about 6 GB, plus pip's cache and BuildKit's layers while building.
DISK_PER_IMAGE = 10 * 2**30
# An extension shares its parent's layers and adds its own packages: measured +0.12 GB for the
# tracking example; 2 GiB leaves room for heavier ones.
DISK_PER_EXTENSION = 2 * 2**30


BIT_FOR_BIT_TIP = (
    "equal image digests need buildx with BuildKit >= 0.13 on the containerd image store "
    '(daemon.json: {"features": {"containerd-snapshotter": true}}, the default of fresh Engine 29 installs)'
)


@dataclass(frozen=True)
class Check:
    name: str
    state: Finding
    detail: str
    tip: str = ""


def _gpu_checks(images: list[ImageSpec], info: dict[str, Any], ci: CiSpec | None, probe: host.Probe) -> list[Check]:
    gpus = host.nvidia_gpus(probe)
    if gpus is None:
        return [
            Check(
                "nvidia driver", Finding.INFO, "no nvidia-smi: no NVIDIA driver on this host; images build and test on CPU (GPU tests skip)"
            )
        ]
    if not gpus:
        return [Check("nvidia driver", Finding.FAIL, "nvidia-smi found no GPU", "check `nvidia-smi` and the kernel module")]
    driver = gpus[0].driver
    names = ", ".join(f"{g.index}: {g.name}" for g in gpus)
    checks = [Check("nvidia driver", Finding.OK, f"driver {driver}; GPUs {names}")]
    if info:
        runtime = nvidia_runtime_present(info)
        if runtime:
            checks.append(Check("nvidia runtime", Finding.OK, "Docker can pass GPUs to containers (--gpus)"))
        else:
            checks.append(
                Check(
                    "nvidia runtime",
                    Finding.FAIL,
                    "Docker has no NVIDIA runtime: containers cannot see the GPUs",
                    "install nvidia-container-toolkit, then `nvidia-ctk runtime configure --runtime=docker` and restart dockerd",
                )
            )
    for variant, needed in sorted({(i.variant, i.driver_min) for i in images}):
        ok = version_tuple(driver) >= version_tuple(needed)
        checks.append(
            Check(
                f"variant {variant}",
                Finding.OK if ok else Finding.FAIL,
                f"needs driver >= {needed}: {'runs' if ok else 'cannot run'} on {driver}",
                "" if ok else f"upgrade the driver to >= {needed}, or use a variant whose minimum this driver meets",
            )
        )
    if ci is not None and images:
        # A test cell asks for its runner class's labels and its driver branch's label; a runner
        # carries the label of every branch whose images its driver runs (docs/gpu-runner.md).
        branches: list[str] = []
        for image in images:
            if ci.driver_label and image.driver_min != "unknown" and version_tuple(driver) >= version_tuple(image.driver_min):
                label = ci.driver_label.replace("{branch}", image.driver_min.split(".")[0])
                branches += [label] if label not in branches else []
        classes = "; ".join(f"{name}: {', '.join(labels)}" for name, labels in ci.classes.items()) or "none declared in ci.classes"
        checks.append(
            Check(
                "runner labels",
                Finding.INFO,
                f"as a self-hosted GitHub Actions test runner, give it its runner class's labels ({classes}) and: {', '.join(branches) or '(no driver label)'}",
            )
        )
    return checks


def run_checks(
    images: list[ImageSpec],
    engine: Engine,
    builder: Callable[[], Builder],
    runner: BuildRunner,
    probe: host.Probe,
    ci: CiSpec | None = None,
) -> list[Check]:
    """Host checks for building and running ``images`` (none: the host alone): ``engine`` not yet
    reached (an unreachable one is a finding), ``builder`` finds the docker CLI that builds,
    ``runner`` runs the reproducibility probe's builds, ``probe`` runs nvidia-smi."""
    checks: list[Check] = []
    docker_root = Path("/var/lib/docker")
    info: dict[str, Any] = {}
    try:
        version = engine.version()
        info = engine.info()
        docker_root = Path(info.get("DockerRootDir") or docker_root)
        checks.append(
            Check(
                "docker engine", Finding.OK, f"Engine {version.get('Version')} (API {version.get('ApiVersion')}), {engine.describe_store()}"
            )
        )
    except ImagekitError as exc:
        checks.append(Check("docker engine", Finding.FAIL, exc.message, exc.tip or ""))
    try:
        found = builder()
        repro = reproducibility.detect(found, engine, runner)
        checks.append(Check("buildkit", Finding.OK, found.describe(repro.method)))
        # Informational below bit-for-bit: verify still proves equal file trees on any builder.
        tip = "" if repro.bit_for_bit else BIT_FOR_BIT_TIP
        checks.append(Check("reproducibility", Finding.OK if repro.bit_for_bit else Finding.INFO, repro.describe(), tip))
    except ImagekitError as exc:
        checks.append(Check("buildkit", Finding.FAIL, exc.message, exc.tip or ""))
    checks += _gpu_checks(images, info, ci, probe)
    free = host.free_bytes(docker_root)
    extensions = sum(1 for i in images if i.parent is not None)
    wanted = DISK_PER_IMAGE * max(1, len(images) - extensions) + DISK_PER_EXTENSION * extensions
    enough = free >= wanted
    checks.append(
        Check(
            "disk",
            Finding.OK if enough else Finding.FAIL,
            f"{free / 2**30:.0f} GiB free under {docker_root}; about {wanted / 2**30:.0f} GiB wanted for {max(1, len(images))} image(s)",
            "" if enough else "free space (`docker system prune`) or build fewer images with --only",
        )
    )
    return checks


NO_TLOG = ("no transparency log: signatures are checked against the site's key alone, so nothing public records "
           "when the key signed, and a leaked key's signatures cannot be told from yours (README \"Signing and evidence\")")  # fmt: skip


def signing_check(key_set: bool, signer: Callable[[], str]) -> Check:
    """Whether publish and stage can sign here: ``key_set``, whether IMAGEKIT_SIGNING_KEY is set;
    ``signer`` describes the cosign and key found (never the key itself), or raises ImagekitError."""
    if not key_set:
        return Check(
            "signing",
            Finding.INFO,
            "off: IMAGEKIT_SIGNING_KEY is not set, so publish and stage push digests with no signature, SBOM or test attestation",
            "cosign generate-key-pair, then IMAGEKIT_SIGNING_KEY=cosign.key and IMAGEKIT_SIGNING_PASSWORD in the publishing job",
        )
    try:
        found = signer()
    except ImagekitError as exc:
        return Check("signing", Finding.FAIL, exc.message, exc.tip or "")
    return Check("signing", Finding.OK, f"{found}; {NO_TLOG}")
