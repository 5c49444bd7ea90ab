"""Runs inside an image as the last build step and prints its package manifest as JSON: every pip
package of /opt/venv and every installed Debian package, with versions and sizes, and the CUDA
libraries among them. Standard library only (it runs on the image's own Python), and deterministic:
two builds of the same content print the same bytes (`imagekit verify` compares them).

Read by `imagekit manifest` and `imagekit diff`, and by the size budget check."""

from __future__ import annotations  # a site's base may have an older Python

import json
import os
import re
import sys
from importlib import metadata
from pathlib import Path

SCHEMA = 1
VENV = Path("/opt/venv")
DPKG_STATUS = Path("/var/lib/dpkg/status")
# The layer plan (layer name → its pip packages), mounted by the build step beside this script.
LAYERS = Path("/run/imagekit/layers.json")
# pip packages that carry CUDA user-space libraries; apt packages of the CUDA toolkit and its libraries.
CUDA_PIP = re.compile(r"^(nvidia-|triton$)")
CUDA_APT = re.compile(
    r"^(cuda-|libcu(blas|dart|dnn|fft|pti|rand|solver|sparse|tensor)|libnccl|libnpp|libnv(jitlink|jpeg|rtc|toolsext|infer))"
)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_size(dist: metadata.Distribution) -> int:
    total = 0
    for file in dist.files or []:
        try:
            total += os.lstat(dist.locate_file(file)).st_size
        except OSError:
            pass  # listed in RECORD but not installed (e.g. a .pyc never compiled)
    return total


def pip_packages() -> dict:
    site = sorted(VENV.glob("lib/python*/site-packages"))
    found = {}
    for dist in metadata.distributions(path=[str(p) for p in site]):
        found[_normal(dist.metadata["Name"])] = {"version": dist.version, "size": _dist_size(dist)}
    return dict(sorted(found.items()))


def apt_packages() -> dict:
    if not DPKG_STATUS.is_file():
        return {}
    found = {}
    for stanza in DPKG_STATUS.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", stanza, re.MULTILINE))
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            arch = fields.get("Architecture", "all")
            name = fields["Package"] if arch in ("all", _native_arch()) else f"{fields['Package']}:{arch}"
            found[name] = {"version": fields.get("Version", ""), "size": int(fields.get("Installed-Size", "0") or 0) * 1024}
    return dict(sorted(found.items()))


def _native_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def torch_cuda() -> str | None:
    """torch.version.cuda without importing torch (seconds, and a GPU probe, for one string)."""
    for version_py in sorted(VENV.glob("lib/python*/site-packages/torch/version.py")):
        match = re.search(r"^cuda(?:: \S+)? = '([^']+)'", version_py.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return None


def cuda_toolkit() -> str | None:
    """The base image's CUDA toolkit (nvidia/cuda images set CUDA_VERSION), None on a plain OS."""
    return os.environ.get("CUDA_VERSION") or None


def layers(pip: dict) -> list | None:
    """The layer plan the image was built with, each layer with its packages' installed bytes."""
    if not LAYERS.is_file():
        return None  # built from a template that mounts none
    plan = json.loads(LAYERS.read_text(encoding="utf-8"))
    return [{**layer, "size": sum(pip[p]["size"] for p in layer["packages"] if p in pip)} for layer in plan]


def main() -> int:
    pip, apt = pip_packages(), apt_packages()
    manifest = {
        "schema": SCHEMA,
        "image": os.environ.get("IMAGEKIT_IMAGE_ID", ""),
        "python": ".".join(map(str, sys.version_info[:3])),
        "cuda": {
            "toolkit": cuda_toolkit(),
            "torch": torch_cuda(),
            "libraries": {
                **{name: p["version"] for name, p in pip.items() if CUDA_PIP.match(name)},
                **{name: p["version"] for name, p in apt.items() if CUDA_APT.match(name)},
            },
        },
        "pip": pip,
        "apt": apt,
        "size": {"pip": sum(p["size"] for p in pip.values()), "apt": sum(p["size"] for p in apt.values())},
    }
    planned = layers(pip)
    if planned is not None:
        manifest["layers"] = planned
    json.dump(manifest, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
