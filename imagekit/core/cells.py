"""The matrix → GitHub Actions job cells, for `strategy.matrix` (`imagekit matrix list --format
github`). One cell per base image, with its extensions: they are built in the same job, parents
first, on the one runner engine that holds the parent. Each cell carries its runner labels, its
timeout, and an inputs id: a hash of everything its images are built and tested from, which tells
a pull request which cells it changed (README "GitHub Actions")."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from imagekit.core.lock import Lock
from imagekit.core.matrix import ImageSpec, Matrix
from imagekit.core.render import Renderer
from imagekit.errors import ConfigurationError

# Keys every cell has; the workflow may read only these (tests/unit/test_workflows.py checks it).
KEYS = ("id", "images", "runs_on", "timeout_minutes", "inputs_id", "changed")


def _tree_hash(digest: Any, root: Path, label: str) -> None:
    """Fold every file under ``root`` (names relative to it, and contents) into ``digest``."""
    if not root.exists():
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(f"{label}/{path.relative_to(root).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())


def _toolkit_hash() -> str:
    """The installed imagekit's own files: a toolkit change is a change to every cell."""
    digest = hashlib.sha256()
    package = resources.files("imagekit")
    _tree_hash(digest, Path(str(package)), "imagekit")
    return digest.hexdigest()


def inputs_id(matrix: Matrix, lock: Lock | None, family: list[ImageSpec], toolkit: str) -> str:
    renderer = Renderer(matrix, lock)
    digest = hashlib.sha256(toolkit.encode())
    for image in family:
        rendered = renderer.render(image)
        pin = lock.images.get(image.id) if lock else None
        payload = {
            "entry": image.entry(),
            "context": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(rendered.context.items())},
            "base": pin.base if pin else None,
        }
        digest.update(json.dumps(payload, sort_keys=True).encode())
        if image.id in matrix.extension_tests:
            _tree_hash(digest, matrix.extension_tests[image.id], f"tests:{image.id}")
    _tree_hash(digest, matrix.smoke_dir, "smoke")
    return digest.hexdigest()


def cells(matrix: Matrix, lock: Lock | None, images: list[ImageSpec], previous: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One cell per base image among ``images`` (with its extensions among them), in matrix order.
    ``previous``: cell id → inputs id from the base of a pull request; a cell is changed when its
    inputs id differs (or it is new). None: every cell counts as changed."""
    toolkit = _toolkit_hash()
    out = []
    for base in (i for i in images if i.parent is None):
        family = [base, *(i for i in images if i.parent == base.id)]
        ident = inputs_id(matrix, lock, family, toolkit)
        out.append(
            {
                "id": base.id,
                "images": " ".join(i.id for i in family),
                "runs_on": matrix.ci.labels(base),
                "timeout_minutes": matrix.ci.timeout_minutes,
                "inputs_id": ident,
                "changed": previous is None or previous.get(base.id) != ident,
            }
        )
    return out


def read_previous(path: Path) -> dict[str, str]:
    """cell id → inputs id from an earlier `--format github` listing."""
    try:
        if not path.is_file() or path.stat().st_size > 4 * 2**20:
            raise ValueError("not a regular file of at most 4 MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
        cells = {c["id"]: c["inputs_id"] for c in data["include"]}
        if not all(isinstance(v, str) and isinstance(k, str) for k, v in cells.items()):
            raise ValueError("a cell's id or inputs_id is not a string")
        return cells
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
        raise ConfigurationError(
            f"{path} is not a `imagekit matrix list --format github` listing ({str(exc)[:120]})",
            tip="list the base commit's cells with its own imagekit, or leave --changed-against out to run every cell",
        ) from None
