"""The matrix → GitHub Actions job cells, for `strategy.matrix` (`imagekit matrix list --format
github`, and `--format github-tests`). A build cell is a base image with its extensions: they are
built in the same job, parents first, on the one runner engine that holds the parent, and staged. A
test cell is such a family on one runner class: it tests the staged digests there. Each cell
carries its runner labels, its timeout, and an inputs id: a hash of everything its images are built
and tested from, which tells a pull request which cells it changed (README "GitHub Actions")."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, ValidationError

from imagekit.core import grammar
from imagekit.core.identity import context_digests
from imagekit.core.lock import Lock
from imagekit.core.matrix import ImageSpec, Matrix, held_to
from imagekit.core.render import Renderer
from imagekit.core.source import json_problems, listed
from imagekit.errors import ConfigurationError

CellId = Annotated[StrictStr, held_to(grammar.TAG, "an image id")]
InputsId = Annotated[StrictStr, held_to(grammar.HEX64, "an inputs id (a sha256: 64 lowercase hex digits)")]


class Cell(BaseModel):
    """One job cell as `--format github` lists it, in `{"include": [cells…]}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: CellId  # the base image's id
    images: StrictStr  # the base image's id and its extensions', space-separated (IMAGEKIT_ONLY)
    runs_on: list[StrictStr]
    timeout_minutes: StrictInt
    inputs_id: InputsId
    changed: StrictBool
    # The matrix's ci.build_cache, or "" (IMAGEKIT_CACHE_REGISTRY, which takes "" as unset).
    cache_registry: StrictStr = ""


class TestCell(Cell):
    """One family on one runner class (`--format github-tests`)."""

    runner_class: CellId


# Keys every cell has; the workflow may read only these (tests/unit/test_workflows.py checks it).
KEYS = tuple(Cell.model_fields)
TEST_KEYS = tuple(TestCell.model_fields)


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
            "context": context_digests(rendered),
            "base": pin.base if pin else None,
        }
        digest.update(json.dumps(payload, sort_keys=True).encode())
        if image.id in matrix.extension_tests:
            _tree_hash(digest, matrix.extension_tests[image.id], f"tests:{image.id}")
    _tree_hash(digest, matrix.smoke_dir, "smoke")
    return digest.hexdigest()


def cells(
    matrix: Matrix, lock: Lock | None, images: list[ImageSpec], previous: dict[str, str] | None = None, *, tests: bool = False
) -> list[dict[str, Any]]:
    """One build cell per base image among ``images`` (with its extensions among them), in matrix
    order; with ``tests``, one test cell per such family and runner class it is tested on.
    ``previous``: cell id → inputs id from the base of a pull request; a cell is changed when its
    inputs id differs (or it is new). None: every cell counts as changed."""
    toolkit = _toolkit_hash()
    out = []
    for base in (i for i in images if i.parent is None):
        family = [base, *(i for i in images if i.parent == base.id)]
        ident = inputs_id(matrix, lock, family, toolkit)
        shared = {
            "id": base.id,
            "images": " ".join(i.id for i in family),
            "timeout_minutes": matrix.ci.timeout_minutes,
            "inputs_id": ident,
            "changed": previous is None or previous.get(base.id) != ident,
            "cache_registry": matrix.ci.build_cache or "",
        }
        if not tests:
            out.append(Cell(runs_on=list(matrix.ci.runs_on), **shared).model_dump())
            continue
        for name in matrix.ci.classes_for(family):
            out.append(TestCell(runs_on=matrix.ci.labels(base, name), runner_class=name, **shared).model_dump())
    return out


class _ListedCell(BaseModel):
    """A cell of an earlier listing, as far as it is compared: its id and inputs id. That listing
    is written by the base commit's own imagekit (.github/scripts/plan-cells), which may list keys
    this one no longer does or not yet the ones it added: its other keys are not read, so a pull
    request that changes what a cell carries still plans against its base."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    id: CellId
    inputs_id: InputsId


class _Listing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    include: list[_ListedCell]


# Bounds on an earlier listing, far above any real one: it is read whole, and JSON nests by recursion.
LISTING_MAX_BYTES = 4 * 2**20


def read_previous(path: Path) -> dict[str, str]:
    """cell id → inputs id from an earlier `--format github` listing; a ConfigurationError (exit 2)
    naming the file and each bad field when it is not one."""

    def refused(problems: list[str]) -> ConfigurationError:
        return ConfigurationError(
            f"{path} is not a `imagekit matrix list --format github` listing" + listed(problems),
            tip="list the base commit's cells with its own imagekit, or leave --changed-against out to run every cell",
        )

    try:
        if not path.is_file() or path.stat().st_size > LISTING_MAX_BYTES:
            raise ValueError(f"not a regular file of at most {LISTING_MAX_BYTES // 2**20} MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
        raise refused([str(exc)[:120]]) from None
    try:
        listing = _Listing.model_validate(data)
    except ValidationError as exc:
        raise refused(json_problems(exc)) from None
    first: dict[str, int] = {}
    for i, cell in enumerate(listing.include):
        if cell.id in first:
            raise refused([f"include.{i}.id: lists the cell {cell.id} again (first as include.{first[cell.id]}): which inputs id counts?"])
        first[cell.id] = i
    return {cell.id: cell.inputs_id for cell in listing.include}
