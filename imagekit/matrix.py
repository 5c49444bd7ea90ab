"""matrix.yaml → validated, typed, immutable image specifications.

Validation happens here once: shape (pydantic, unknown keys refused), then the compatibility facts.
Every problem is reported together, each at the file and line that set the field. The rest of
imagekit trusts the objects this module returns.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from . import facts as facts_mod
from .errors import ConfigurationError, MatrixError
from .facts import version_tuple
from .matrix_source import Key, MatrixSource, field_name, load

Flavor = Literal["runtime", "devel"]
FLAVORS: tuple[str, ...] = ("runtime", "devel")

# ${VAR} or ${VAR:-default} in index URLs, so credentials stay in the environment, never in files.
PYPI_INDEX = "${PIP_INDEX_URL:-https://pypi.org/simple}"
PYTORCH_INDEX = "https://download.pytorch.org/whl/{channel}"

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# A docker repository: lowercase path components, optional registry host[:port] in front.
_REPOSITORY = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
# host[:port] (with a dot, a port, or localhost), then optional lowercase path components
_REGISTRY = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+|[a-zA-Z0-9.-]+:[0-9]+|localhost)(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!-]+$")
_CUDA = re.compile(r"^\d+\.\d+\.\d+$")
_DRIVER = re.compile(r"^\d+(\.\d+){0,2}$")
# A Debian package, optionally pinned: name or name=version.
_APT = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RUNNER_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A size: bytes as a number, or a number with a unit, decimal (MB, GB, as `docker images` shows
# sizes) or binary (MiB, GiB).
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$")
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TorchSection(_Model):
    version: StrictStr
    torchaudio: StrictStr


class UserSection(_Model):
    name: StrictStr = "imagekit"
    uid: StrictInt = Field(default=1000, ge=1, le=2**31 - 1)


class PerFlavor(_Model):
    runtime: StrictStr | None = None
    devel: StrictStr | None = None


class VariantSection(_Model):
    cuda: StrictStr
    wheel: StrictStr
    base_image: PerFlavor | None = None
    os: StrictStr | None = None
    driver: StrictStr | None = None

    @field_validator("base_image", mode="before")
    @classmethod
    def _one_base_for_all_flavors(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {flavor: value for flavor in FLAVORS}
        return value


class ExtensionSection(_Model):
    parent: StrictStr  # a flavor, or a glob over the base images' ids
    repository: StrictStr | None = None
    packages: list[StrictStr] = []
    apt: list[StrictStr] = []
    env: dict[str, StrictStr] = {}
    template: StrictStr | None = None  # a Dockerfile snippet (Jinja2), relative to the matrix file
    tests: StrictStr | None = None  # a folder of pytest files run beside the smoke suite


class CiSection(_Model):
    """What a GitHub Actions cell needs to find its runner (README "GitHub Actions")."""

    runs_on: list[StrictStr] = Field(default=["self-hosted", "linux", "gpu"], min_length=1)
    # Added to runs_on per cell: a label naming the driver branch the image needs ({branch}: the
    # major version of its minimum driver, e.g. nvidia-525); null for none.
    driver_label: StrictStr | None = "nvidia-{branch}"
    timeout_minutes: StrictInt = Field(default=120, ge=1, le=4320)


class MatrixSection(_Model):
    repository: StrictStr = "imagekit/pytorch"
    registry: StrictStr | None = None
    source: StrictStr | None = None
    torch: TorchSection
    python: StrictStr
    os: StrictStr = "ubuntu22.04"
    flavors: list[Flavor] = Field(min_length=1)
    variants: dict[str, VariantSection] = Field(min_length=1)
    indexes: dict[str, StrictStr] = {}
    packages: list[StrictStr] = []
    templates: StrictStr = "templates"
    smoke: StrictStr = "smoke"
    user: UserSection = UserSection()
    extensions: dict[str, ExtensionSection] = {}
    # image id glob → the most an image may weigh; an image meets every budget whose glob matches it
    size_budgets: dict[str, StrictStr | StrictInt] = {}
    ci: CiSection = CiSection()


@dataclass(frozen=True)
class ExtensionSpec:
    """What an extension adds to its parent. The snippet is held as text, not as a path, so the
    content id depends on what it says, not on where the checkout lives."""

    name: str
    packages: tuple[str, ...]
    apt: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    snippet: str | None
    snippet_name: str | None


@dataclass(frozen=True)
class ImageSpec:
    """One matrix cell: everything that determines one image, and nothing host-specific."""

    id: str
    repository: str
    variant: str
    flavor: str
    torch: str
    torchaudio: str
    python: str
    cuda: str
    wheel: str
    wheel_cuda: str
    driver_min: str
    base_image: str
    index_url: str
    packages: tuple[str, ...]
    user: str
    uid: int
    # Extensions only: the parent image's id (base_image is then the parent's tag) and what they add.
    parent: str | None = None
    extension: ExtensionSpec | None = None

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.id}"

    def entry(self) -> dict[str, Any]:
        entry = asdict(self)
        if self.extension is None:  # base images keep the entry (and content id) they had before extensions
            del entry["parent"], entry["extension"]
        return entry


@dataclass(frozen=True)
class SizeBudget:
    limit: int  # bytes
    where: str  # the file, line and field that set it, for the message that enforces it


@dataclass(frozen=True)
class CiSpec:
    runs_on: tuple[str, ...]
    driver_label: str | None
    timeout_minutes: int

    def labels(self, image: ImageSpec) -> list[str]:
        """The runner labels a cell building ``image`` asks for."""
        branch = image.driver_min.split(".")[0]
        extra = [self.driver_label.format(branch=branch)] if self.driver_label and image.driver_min != "unknown" else []
        return [*self.runs_on, *extra]


@dataclass(frozen=True)
class Matrix:
    images: tuple[ImageSpec, ...]
    templates_dir: Path
    smoke_dir: Path
    source: str | None
    files: tuple[Path, ...]
    ci: CiSpec
    registry: str | None = None
    # Extension image id → its own tests folder (host paths stay out of ImageSpec and the content id).
    extension_tests: dict[str, Path] = field(default_factory=dict)
    # Image id → its tightest size budget. Kept out of ImageSpec: a budget is a check on the
    # image, not part of what it contains, so changing one must not change a content id.
    size_budgets: dict[str, SizeBudget] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what is worth a warning but not an error (file:line: field: …)

    def image(self, image_id: str) -> ImageSpec:
        return next(i for i in self.images if i.id == image_id)

    def select(self, patterns: list[str] | None, *, with_parents: bool = False) -> list[ImageSpec]:
        """Images whose id matches any glob in ``patterns`` (all when none given), in matrix order,
        which puts parents before their extensions. ``with_parents`` adds the parents of chosen
        extensions: a build needs them."""
        if not patterns:
            return list(self.images)
        chosen = {img.id for img in self.images if any(fnmatch.fnmatchcase(img.id, p) for p in patterns)}
        if not chosen:
            ids = ", ".join(img.id for img in self.images)
            raise ConfigurationError(
                f"--only {' '.join(repr(p) for p in patterns)} matches no image",
                tip=f"image ids are: {ids}",
            )
        if with_parents:
            chosen |= {img.parent for img in self.images if img.id in chosen and img.parent}
        return [img for img in self.images if img.id in chosen]


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if get_origin(annotation) in (Union, UnionType) and len(args) == 1 else annotation


def _fields_of(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at ``loc`` inside ``model``, for 'did you mean' suggestions."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = _unwrap_optional(field.annotation)
        elif get_origin(current) in (dict, list):
            current = _unwrap_optional(get_args(current)[-1])  # the part was a key or an index
        else:
            return []
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _shape_problems(src: MatrixSource, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc: Key = tuple(err["loc"])
        where = src.origin(loc)
        name = field_name(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _fields_of(MatrixSection, loc[:-1]), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{where}: {name}: unknown key{hint}")
        elif kind == "missing":
            problems.append(f"{where}: {name}: required field is missing")
        elif kind == "string_type" and isinstance(err.get("input"), (int, float)) and not isinstance(err["input"], bool):
            problems.append(
                f'{where}: {name}: must be a string in quotes, like {loc[-1]}: "3.11"; YAML read this one as the number {err["input"]}'
            )
        else:
            problems.append(f"{where}: {name}: {err['msg']}")
    return problems


def _fact_problems(src: MatrixSource, m: MatrixSection) -> list[str]:
    facts = facts_mod.load()
    problems: list[str] = []

    def bad(key: Key, message: str) -> None:
        problems.append(f"{src.origin(key)}: {field_name(key)}: {message}")

    if not _REPOSITORY.match(m.repository):
        bad(("repository",), f"'{m.repository}' is not a valid image repository (lowercase, e.g. registry.example/ml/pytorch)")
    if m.registry is not None and not _REGISTRY.match(m.registry):
        bad(("registry",), f"'{m.registry}' is not a registry reference like registry.example.internal/ml or 127.0.0.1:5000/ml")
    if len(set(m.flavors)) != len(m.flavors):
        bad(("flavors",), "lists a flavor twice")
    for i, pkg in enumerate(m.packages):
        if not _PINNED.match(pkg):
            bad(("packages", i), f"'{pkg}' must be pinned as name==version so images rebuild to the same content")

    release = facts.torch.get(m.torch.version)
    if release is None:
        bad(
            ("torch", "version"),
            f"torch {m.torch.version} is not known to imagekit (known: {', '.join(facts.torch)}); add it to imagekit/data/facts.yaml with its sources",
        )
        return problems
    if m.torch.torchaudio != release.torchaudio:
        bad(("torch", "torchaudio"), f"torch {release.version} pairs with torchaudio {release.torchaudio}, not {m.torch.torchaudio}")
    if m.python not in release.python:
        bad(("python",), f"torch {release.version} publishes wheels for Python {', '.join(release.python)}, not {m.python}")

    for name, v in m.variants.items():
        key: Key = ("variants", name)
        if not _NAME.match(name):
            bad(key, "variant names must be lowercase letters, digits, '.', '_' or '-' (they become part of image tags)")
        if v.wheel not in release.wheels:
            wanted = facts.wheel_cuda.get(v.wheel)
            same_major = [w for w in release.wheels if wanted and facts.wheel_cuda[w].split(".")[0] == wanted.split(".")[0]]
            newer = [w for w in same_major if version_tuple(facts.wheel_cuda[w]) >= version_tuple(wanted or "0")]
            pick = (newer or same_major or list(release.wheels))[0]
            bad(
                key + ("wheel",),
                f"torch {release.version} publishes no {v.wheel} wheel (its channels: {', '.join(release.wheels)}); pick wheel: {pick}"
                + (f", which runs on a CUDA {wanted} base under minor-version compatibility" if newer and wanted else ""),
            )
            continue
        wheel_cuda = facts.wheel_cuda[v.wheel]
        if not _CUDA.match(v.cuda):
            bad(key + ("cuda",), f"'{v.cuda}' must be a full CUDA version such as 12.1.1")
            continue
        if v.cuda in facts.cuda_tags_replaced:
            bad(key + ("cuda",), f"nvidia/cuda {v.cuda} tags are unsupported; use {facts.cuda_tags_replaced[v.cuda]}")
            continue
        os_name = v.os or m.os
        derived = [f for f in m.flavors if v.base_image is None or getattr(v.base_image, f) is None]
        if derived and v.cuda not in facts.cuda_tags:
            bad(
                key + ("cuda",),
                f"no supported nvidia/cuda image for CUDA {v.cuda} (supported: {', '.join(facts.cuda_tags)}); pick one or set base_image",
            )
        if derived and os_name not in facts.cuda_os:
            bad(
                key + ("os",) if v.os else ("os",),
                f"nvidia/cuda images exist for {', '.join(facts.cuda_os)}, not {os_name}; pick one or set base_image",
            )
        if v.cuda.split(".")[0] != wheel_cuda.split(".")[0]:
            bad(
                key + ("wheel",),
                f"wheel {v.wheel} bundles CUDA {wheel_cuda} libraries but the base is CUDA {v.cuda}; pick a CUDA {v.cuda.split('.')[0]}.x wheel or a CUDA {wheel_cuda} base",
            )
            continue
        needed = _driver_min(v.cuda, wheel_cuda)
        if v.driver is not None:
            if not _DRIVER.match(v.driver):
                bad(key + ("driver",), f"'{v.driver}' is not a driver version such as 535.104.05")
            elif version_tuple(v.driver) < version_tuple(needed):
                runs = [
                    w
                    for w in release.wheels
                    if version_tuple(_driver_min(facts.wheel_cuda[w] + ".0", facts.wheel_cuda[w])) <= version_tuple(v.driver)
                ]
                instead = (
                    f"; on driver {v.driver} use wheel {runs[0]} on a CUDA {facts.wheel_cuda[runs[0]]} base"
                    if runs
                    else "; no torch wheel runs on it"
                )
                bad(key + ("driver",), f"CUDA {v.cuda} with wheel {v.wheel} (CUDA {wheel_cuda}) needs driver >= {needed}{instead}")
    return problems


def _ci_problems(src: MatrixSource, m: MatrixSection) -> list[str]:
    problems = []
    for i, label in enumerate(m.ci.runs_on):
        if not _RUNNER_LABEL.match(label):
            problems.append(
                f"{src.origin(('ci', 'runs_on', i))}: ci.runs_on.{i}: '{label}' is not a runner label (letters, digits, '.', '_', '-')"
            )
    if m.ci.driver_label is not None:
        try:
            example = m.ci.driver_label.format(branch="525")
        except (KeyError, IndexError, ValueError):
            example = ""
        if "{branch}" not in m.ci.driver_label or not _RUNNER_LABEL.match(example):
            problems.append(
                f"{src.origin(('ci', 'driver_label'))}: ci.driver_label: '{m.ci.driver_label}' must be a runner label with "
                "{branch} where the driver branch goes, like nvidia-{branch}, or null for none"
            )
    return problems


def _base_ids(m: MatrixSection) -> list[tuple[str, str]]:
    """(image id, flavor) of every base image, in matrix order."""
    return [(f"{m.torch.version}-{name}-py{m.python}-{flavor}", flavor) for name in m.variants for flavor in m.flavors]


def _parents(m: MatrixSection, pattern: str) -> list[str]:
    """Base image ids an extension's `parent` names: every image of a flavor, or an id glob."""
    return [i for i, flavor in _base_ids(m) if (flavor == pattern if pattern in FLAVORS else fnmatch.fnmatchcase(i, pattern))]


def _extension_problems(src: MatrixSource, m: MatrixSection, smoke_dir: Path) -> list[str]:
    problems: list[str] = []

    def bad(key: Key, message: str) -> None:
        problems.append(f"{src.origin(key)}: {field_name(key)}: {message}")

    in_parent = {_project_name(p): p for p in [f"torch=={m.torch.version}", f"torchaudio=={m.torch.torchaudio}", *m.packages]}
    smoke_files = {p.name for p in smoke_dir.glob("test_*.py")}
    for name, ext in m.extensions.items():
        key: Key = ("extensions", name)
        if not _NAME.match(name):
            bad(key, "extension names must be lowercase letters, digits, '.', '_' or '-' (they become part of image ids)")
        if not _parents(m, ext.parent):
            ids = ", ".join(i for i, _ in _base_ids(m))
            bad(key + ("parent",), f"'{ext.parent}' matches no image; name a flavor ({', '.join(m.flavors)}) or an id glob over: {ids}")
        if ext.repository is not None and not _REPOSITORY.match(ext.repository):
            bad(key + ("repository",), f"'{ext.repository}' is not a valid image repository (lowercase, e.g. ml/pytorch-tracking)")
        for i, pkg in enumerate(ext.packages):
            if not _PINNED.match(pkg):
                bad(key + ("packages", i), f"'{pkg}' must be pinned as name==version so images rebuild to the same content")
            elif _project_name(pkg) in in_parent:
                bad(key + ("packages", i), f"the parent already installs {in_parent[_project_name(pkg)]}; an extension cannot change it")
        for i, pkg in enumerate(ext.apt):
            if not _APT.match(pkg):
                bad(key + ("apt", i), f"'{pkg}' is not a Debian package name, optionally pinned as name=version")
        for var, value in ext.env.items():
            if not _ENV_NAME.match(var):
                bad(key + ("env", var), "environment variable names are letters, digits and '_', not starting with a digit")
            elif var.startswith("IMAGEKIT_"):
                bad(key + ("env", var), "IMAGEKIT_* variables are what the image promises to the smoke suite; imagekit sets them")
            if "\n" in value or "\r" in value:
                bad(key + ("env", var), "values must be on one line")
        if ext.template is not None and not _resolve_path(src, key + ("template",), ext.template).is_file():
            bad(key + ("template",), f"{_resolve_path(src, key + ('template',), ext.template)} is not a file")
        if ext.tests is not None:
            folder = _resolve_path(src, key + ("tests",), ext.tests)
            tests = {p.name for p in folder.glob("test_*.py")} if folder.is_dir() else set()
            if not tests:
                bad(key + ("tests",), f"{folder} holds no test_*.py files")
            # The two folders run in one pytest session, where same-named test modules collide.
            for clash in sorted(tests & smoke_files):
                bad(key + ("tests",), f"{folder / clash} has the same name as a smoke test; rename it")
    return problems


def parse_size(value: str | int) -> int | None:
    """Bytes from ``7GB``, ``6.5 GiB`` or a plain number of bytes; None when it is not a size."""
    if isinstance(value, int):
        return value if value > 0 else None
    match = _SIZE.match(value)
    return int(float(match.group(1)) * _UNITS[match.group(2) or "B"]) if match else None


def _all_ids(m: MatrixSection) -> list[str]:
    return [i for i, _ in _base_ids(m)] + [f"{p}-{name}" for name, ext in m.extensions.items() for p in _parents(m, ext.parent)]


def _size_budgets(src: MatrixSource, m: MatrixSection) -> tuple[dict[str, SizeBudget], list[str], list[str]]:
    """Image id → its tightest budget; the problems with the budgets as written; and notes on
    budgets that match no image, which are ignored: an overlay may have removed their images."""
    problems: list[str] = []
    notes: list[str] = []
    budgets: dict[str, SizeBudget] = {}
    ids = _all_ids(m)
    for pattern, value in m.size_budgets.items():
        key: Key = ("size_budgets", pattern)
        where = f"{src.origin(key)}: {field_name(key)}"
        limit = parse_size(value)
        if limit is None:
            problems.append(f"{where}: {value!r} is not a size; write bytes or a number with a unit, like 7GB or 6.5GiB")
            continue
        matched = [i for i in ids if fnmatch.fnmatchcase(i, pattern)]
        if not matched:
            notes.append(f"{where}: matches no image, so it checks nothing; image ids are: {', '.join(ids)}")
        for image_id in matched:
            if image_id not in budgets or limit < budgets[image_id].limit:
                budgets[image_id] = SizeBudget(limit, where)
    return budgets, problems, notes


def _project_name(requirement: str) -> str:
    """The normalised project name of name==version (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[=]", requirement, maxsplit=1)[0]).lower()


def _extension(src: MatrixSource, name: str, ext: ExtensionSection) -> ExtensionSpec:
    snippet = None
    if ext.template is not None:
        snippet = _resolve_path(src, ("extensions", name, "template"), ext.template).read_text(encoding="utf-8")
    return ExtensionSpec(
        name=name,
        packages=tuple(ext.packages),
        apt=tuple(ext.apt),
        env=tuple(ext.env.items()),
        snippet=snippet,
        snippet_name=ext.template,
    )


def _driver_min(base_cuda: str, wheel_cuda: str) -> str:
    facts = facts_mod.load()
    candidates = [d for d in (facts.driver_needed(base_cuda), facts.driver_needed(wheel_cuda)) if d]
    return max(candidates, key=version_tuple) if candidates else "unknown"


def _resolve_path(src: MatrixSource, key: Key, value: str) -> Path:
    """Paths in a matrix file are relative to the file that set them."""
    path = Path(value)
    return path if path.is_absolute() else src.origin(key).file.parent / path


def build(src: MatrixSource) -> Matrix:
    try:
        m = MatrixSection.model_validate(src.data)
    except ValidationError as exc:
        raise MatrixError(_shape_problems(src, exc)) from None
    smoke_dir = _resolve_path(src, ("smoke",), m.smoke)
    problems = (_fact_problems(src, m) or _extension_problems(src, m, smoke_dir)) + _ci_problems(src, m)
    size_budgets, budget_problems, notes = _size_budgets(src, m) if not problems else ({}, [], [])
    problems += budget_problems
    if problems:
        raise MatrixError(problems)

    facts = facts_mod.load()
    release = facts.torch[m.torch.version]
    images = []
    for name, v in m.variants.items():
        wheel_cuda = facts.wheel_cuda[v.wheel]
        index = m.indexes.get(v.wheel) or (PYPI_INDEX if v.wheel == release.pypi_wheel else PYTORCH_INDEX.format(channel=v.wheel))
        for flavor in m.flavors:
            base = getattr(v.base_image, flavor) if v.base_image else None
            base = base or f"nvidia/cuda:{v.cuda}-{facts.flavor_tag[flavor]}-{v.os or m.os}"
            images.append(
                ImageSpec(
                    id=f"{m.torch.version}-{name}-py{m.python}-{flavor}",
                    repository=m.repository,
                    variant=name,
                    flavor=flavor,
                    torch=m.torch.version,
                    torchaudio=m.torch.torchaudio,
                    python=m.python,
                    cuda=v.cuda,
                    wheel=v.wheel,
                    wheel_cuda=wheel_cuda,
                    driver_min=_driver_min(v.cuda, wheel_cuda),
                    base_image=base,
                    index_url=index,
                    packages=tuple(m.packages),
                    user=m.user.name,
                    uid=m.user.uid,
                )
            )
    # Extensions come after every base image, so matrix order is always parents first.
    extensions, extension_tests = [], {}
    for name, ext in m.extensions.items():
        spec = _extension(src, name, ext)
        for parent_id in _parents(m, ext.parent):
            parent = next(i for i in images if i.id == parent_id)
            child = replace(
                parent,
                id=f"{parent.id}-{name}",
                repository=ext.repository or parent.repository,
                base_image=parent.tag,
                parent=parent.id,
                extension=spec,
            )
            extensions.append(child)
            if ext.tests is not None:
                extension_tests[child.id] = _resolve_path(src, ("extensions", name, "tests"), ext.tests)
    return Matrix(
        images=tuple(images + extensions),
        templates_dir=_resolve_path(src, ("templates",), m.templates),
        smoke_dir=smoke_dir,
        source=m.source,
        files=src.files,
        registry=m.registry,
        extension_tests=extension_tests,
        size_budgets=size_budgets,
        notes=tuple(notes),
        ci=CiSpec(tuple(m.ci.runs_on), m.ci.driver_label, m.ci.timeout_minutes),
    )


def load_matrix(paths: list[Path]) -> Matrix:
    return build(load(paths))
