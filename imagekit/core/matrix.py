"""matrix.yaml → validated, typed, immutable image specifications.

Validation happens here once: shape (pydantic, unknown keys refused), then the compatibility facts.
Every problem is reported together, each at the file and line that set the field. The rest of
imagekit trusts the objects this module returns.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from imagekit.core import facts as facts_mod
from imagekit.core import grammar
from imagekit.core.facts import version_tuple
from imagekit.core.layers import MAX_RULES, Rule, RuleSection, rule_problems
from imagekit.core.source import Key, MatrixSource, Origin, field_name, load
from imagekit.errors import ConfigurationError, MatrixError

Flavor = Literal["runtime", "devel"]
FLAVORS: tuple[str, ...] = ("runtime", "devel")

# ${VAR} or ${VAR:-default} in index URLs, so credentials stay in the environment, never in files.
PYPI_INDEX = "${PIP_INDEX_URL:-https://pypi.org/simple}"
PYTORCH_INDEX = "https://download.pytorch.org/whl/{channel}"

# The templates every image is rendered from, inside the matrix's `templates:` folder.
TEMPLATE = "Dockerfile.j2"
EXTENSION_TEMPLATE = "Extension.Dockerfile.j2"

# A size: bytes as a number, or a number with a unit, decimal (MB, GB, as `docker images` shows
# sizes) or binary (MiB, GiB).
_SIZE = re.compile(r" *([0-9]{1,15}(?:\.[0-9]{1,6})?) *(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)? *")
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
SNIPPET_MAX = 64 * 1024
SIZE_MAX = 2**50  # a petabyte: no image weighs more, and no budget needs a bigger number


def _shown(value: str) -> str:
    """A value as an error message may quote it: on one line, and short."""
    return repr(value[:60] + ("…" if len(value) > 60 else ""))


def held_to(pattern: re.Pattern[str], what: str, *, max_len: int | None = None) -> AfterValidator:
    """A pydantic validator: the whole value matches ``pattern`` (and is at most ``max_len``
    long), or it is refused as not being ``what``."""

    def check(value: str) -> str:
        if max_len is not None and len(value) > max_len:
            raise ValueError(f"is longer than {max_len} characters")
        if not grammar.full(pattern, value):
            raise ValueError(f"{_shown(value)} is not {what}")
        return value

    return AfterValidator(check)


def _url(*, variables: bool) -> AfterValidator:
    def check(value: str) -> str:
        problem = grammar.url_problem(value, variables=variables)
        if problem:
            raise ValueError(f"{grammar.redact(value)[:60]!r} {problem}" if "credentials" not in problem else f"the URL {problem}")
        return value

    return AfterValidator(check)


def check_registry(value: str) -> str:
    if "@" in value:  # before any echo: what precedes the @ is a credential
        raise ValueError("holds credentials; a registry authenticates through `docker login` or the CI's secrets, never the matrix")
    if len(value) > grammar.NAME_MAX or not grammar.full(grammar.REGISTRY, value):
        raise ValueError(f"{_shown(value)} is not a registry reference like registry.example.internal/ml or 127.0.0.1:5000/ml")
    return value


def _size(value: str | int) -> str | int:
    if parse_size(value) is None:
        raise ValueError(f"{_shown(str(value))} is not a size; write bytes or a number with a unit, like 7GB or 6.5GiB")
    return value


def _env_value(value: str) -> str:
    if len(value) > grammar.ENV_VALUE_MAX:
        raise ValueError(f"is longer than {grammar.ENV_VALUE_MAX} characters; put long content in a file the snippet copies")
    if not grammar.printable(value):
        raise ValueError("values must be on one line, without control characters")
    return value


def _apt(value: str) -> str:
    if not grammar.deb_package(value, pinned=False):
        raise ValueError(f"{_shown(value)} is not a Debian package name, optionally pinned as name=version")
    return value


def _path(value: str) -> str:
    # Where it may point (inside the project) is checked once the file that set it is known.
    if not value or len(value) > 255 or not grammar.printable(value) or "\\" in value:
        raise ValueError(f"{_shown(value)} is not a path of at most 255 characters on one line")
    return value


# Every string field that reaches a Dockerfile, a shell word, a file name or a tag has a type that
# holds it to the grammar of that place (imagekit/grammar.py).
Name = Annotated[
    StrictStr, held_to(grammar.NAME, "a name of lowercase letters, digits, '.', '_' or '-' (at most 40; it becomes part of image tags)")
]
Repository = Annotated[
    StrictStr,
    held_to(grammar.REPOSITORY, "a valid image repository (lowercase, e.g. registry.example/ml/pytorch)", max_len=grammar.NAME_MAX),
]
ImageRef = Annotated[
    StrictStr,
    held_to(
        grammar.IMAGE_REF, "an image reference like nvidia/cuda:12.1.1-base-ubuntu22.04 or name@sha256:…", max_len=grammar.NAME_MAX + 200
    ),
]
UserName = Annotated[
    StrictStr, held_to(grammar.USER, "a user name: lowercase letters, digits, '_' or '-', starting with a letter or '_', at most 32")
]
Pin = Annotated[
    StrictStr, held_to(grammar.PIN, "pinned as name==version (a PEP 440 version in normal form) so images rebuild to the same content")
]
Apt = Annotated[StrictStr, AfterValidator(_apt)]
EnvName = Annotated[
    StrictStr, held_to(grammar.ENV_NAME, "an environment variable name: letters, digits and '_', not starting with a digit")
]
EnvValue = Annotated[StrictStr, AfterValidator(_env_value)]
Cuda = Annotated[StrictStr, held_to(grammar.CUDA, "a full CUDA version such as 12.1.1")]
Driver = Annotated[StrictStr, held_to(grammar.DRIVER, "a driver version such as 535.104.05")]
Os = Annotated[StrictStr, held_to(grammar.OS, "an OS name like ubuntu22.04")]
Version = Annotated[StrictStr, held_to(re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,4}){1,3}"), "a version such as 2.6.0")]
Python = Annotated[StrictStr, held_to(re.compile(r"3\.[0-9]{1,2}"), "a Python version such as 3.11")]
Wheel = Annotated[StrictStr, held_to(re.compile(r"[a-z0-9]{1,16}"), "a wheel channel such as cu124")]
Glob = Annotated[StrictStr, held_to(grammar.GLOB, "an image id glob (letters, digits, '.', '_', '-', '*', '?', '[', ']', '!')")]
RunnerLabel = Annotated[StrictStr, held_to(grammar.RUNNER_LABEL, "a runner label (letters, digits, '.', '_', '-')")]
DriverLabel = Annotated[
    StrictStr,
    held_to(grammar.DRIVER_LABEL, "a runner label with {branch} where the driver branch goes, like nvidia-{branch} (or null for none)"),
]
IndexUrl = Annotated[StrictStr, _url(variables=True)]
SourceUrl = Annotated[StrictStr, _url(variables=False)]
Registry = Annotated[StrictStr, AfterValidator(check_registry)]
PathText = Annotated[StrictStr, AfterValidator(_path)]
Size = Annotated[StrictStr | StrictInt, AfterValidator(_size)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TorchSection(_Model):
    version: Version
    torchaudio: Version


class UserSection(_Model):
    name: UserName = "imagekit"
    uid: StrictInt = Field(default=1000, ge=1, le=2**31 - 2)


class PerFlavor(_Model):
    runtime: ImageRef | None = None
    devel: ImageRef | None = None


class VariantSection(_Model):
    cuda: Cuda
    wheel: Wheel
    base_image: PerFlavor | None = None
    os: Os | None = None
    driver: Driver | None = None

    @field_validator("base_image", mode="before")
    @classmethod
    def _one_base_for_all_flavors(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {flavor: value for flavor in FLAVORS}
        return value


class ExtensionSection(_Model):
    parent: Glob  # a flavor, or a glob over the base images' ids
    repository: Repository | None = None
    packages: list[Pin] = Field(default=[], max_length=500)
    apt: list[Apt] = Field(default=[], max_length=500)
    env: dict[EnvName, EnvValue] = Field(default={}, max_length=200)
    template: PathText | None = None  # a Dockerfile snippet (Jinja2), relative to the matrix file
    tests: PathText | None = None  # a folder of pytest files run beside the smoke suite


class RunnerClassSection(_Model):
    runs_on: list[RunnerLabel] = Field(min_length=1, max_length=20)


class CiSection(_Model):
    """What a GitHub Actions cell needs to find its runner (README "GitHub Actions")."""

    # The build jobs' runner labels: builds need no GPU (each image is built once, staged, and tested
    # by digest on the runner classes below).
    runs_on: list[RunnerLabel] = Field(default=["self-hosted", "linux"], min_length=1, max_length=20)
    # Added to each runner class's labels per test cell: a label naming the driver branch the image
    # needs ({branch}: the major version of its minimum driver, e.g. nvidia-525); null for none.
    driver_label: DriverLabel | None = "nvidia-{branch}"
    timeout_minutes: StrictInt = Field(default=120, ge=1, le=4320)
    # Build once, test the staged digest on each runner class, promote (README "Staging, runner
    # classes and promotion"): where `imagekit stage` pushes, the classes a digest is tested on
    # (a name → the runner labels its test jobs ask for), and which classes an image needs to pass
    # before `imagekit promote` tags it for release (image id glob → class names; a list: every image).
    staging: Registry | None = None
    # Where the build jobs keep BuildKit's cache (host/path; `imagekit build --cache-registry`), so a
    # build host with an empty cache builds unchanged steps from it; none: each host's own cache.
    build_cache: Registry | None = None
    classes: dict[Name, RunnerClassSection] = Field(default={}, max_length=50)
    require: dict[Glob, list[Name]] = Field(default={}, max_length=100)

    @field_validator("require", mode="before")
    @classmethod
    def _a_list_is_every_image(cls, value: Any) -> Any:
        return {"*": value} if isinstance(value, list) else value


class PublishSection(_Model):
    # zstd layers decompress several times faster than gzip on the pulling host; Docker 23+ and
    # containerd 1.5+ pull them, older clients only gzip (README "Layers").
    compression: Literal["gzip", "zstd"] = "gzip"


class MatrixSection(_Model):
    repository: Repository = "imagekit/pytorch"
    registry: Registry | None = None
    source: SourceUrl | None = None
    torch: TorchSection
    python: Python
    os: Os = "ubuntu22.04"
    flavors: list[Flavor] = Field(min_length=1, max_length=2)
    variants: dict[Name, VariantSection] = Field(min_length=1, max_length=50)
    indexes: dict[Wheel, IndexUrl] = {}
    packages: list[Pin] = Field(default=[], max_length=500)
    templates: PathText = "templates"
    smoke: PathText = "smoke"
    user: UserSection = UserSection()
    extensions: dict[Name, ExtensionSection] = Field(default={}, max_length=50)
    # image id glob → the most an image may weigh; an image meets every budget whose glob matches it
    size_budgets: dict[Glob, Size] = Field(default={}, max_length=100)
    ci: CiSection = CiSection()
    # The locked pip set in ordered groups, one layer each (core/layers.py); None: facts.yaml's plan.
    layers: list[RuleSection] | None = Field(default=None, max_length=MAX_RULES)
    publish: PublishSection = PublishSection()


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
    layers: tuple[Rule, ...] = ()  # the layer plan's rules (an extension's own packages are one layer, on top)
    compression: str = "gzip"  # of the image's layers, as built and pushed (gzip or zstd)
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
    staging: str | None = None
    build_cache: str | None = None
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # runner class → its labels
    require: dict[str, tuple[str, ...]] = field(default_factory=dict)  # image id → classes that must pass, sorted

    def labels(self, image: ImageSpec, runner_class: str) -> list[str]:
        """The runner labels a cell testing ``image`` on ``runner_class`` asks for: the class's, and
        the driver branch the image needs."""
        branch = image.driver_min.split(".")[0]
        extra = [self.driver_label.replace("{branch}", branch)] if self.driver_label and image.driver_min != "unknown" else []
        return [*self.classes[runner_class], *(label for label in extra if label not in self.classes[runner_class])]

    def classes_for(self, images: list[ImageSpec]) -> tuple[str, ...]:
        """The runner classes a family of images is tested on: those any of them requires, else
        every declared class (tested, though nothing requires it: promotion will say so)."""
        required = sorted({c for i in images for c in self.require.get(i.id, ())})
        return tuple(required) or tuple(self.classes)


@dataclass(frozen=True)
class Matrix:
    images: tuple[ImageSpec, ...]
    templates_dir: Path
    smoke_dir: Path
    source: str | None
    files: tuple[Path, ...]
    ci: CiSpec
    root: Path  # the project (matrix_source.project_root): templates are read from inside it only
    registry: str | None = None
    # Extension image id → its own tests folder (host paths stay out of ImageSpec and the content id).
    extension_tests: dict[str, Path] = field(default_factory=dict)
    # Extension name → "file:line: extensions.<name>.template: " where its snippet was named, so a
    # snippet that fails to render is reported where a reader looks for it.
    snippet_origins: dict[str, str] = field(default_factory=dict)
    # Image id → its tightest size budget. Kept out of ImageSpec: a budget is a check on the
    # image, not part of what it contains, so changing one must not change a content id.
    size_budgets: dict[str, SizeBudget] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what is worth a warning but not an error (file:line: field: …)
    # Template file name → sha256 of its bytes, for the lock's record of what renders each image.
    template_digests: dict[str, str] = field(default_factory=dict)

    def template_digest(self, image: ImageSpec) -> str | None:
        return self.template_digests.get(EXTENSION_TEMPLATE if image.extension else TEMPLATE)

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
            field = next((f for n, f in current.model_fields.items() if (f.alias or n) == str(part)), None)
            if field is None:
                return []
            current = _unwrap_optional(field.annotation)
        elif get_origin(current) in (dict, list):
            current = _unwrap_optional(get_args(current)[-1])  # the part was a key or an index
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def validation_problems(exc: ValidationError, model: type[BaseModel], origin: Callable[[Key], Origin]) -> list[str]:
    """Each of pydantic's errors for ``model`` as `file:line: field: message`, with the remedy
    where one is known; ``origin`` locates a field (matrices and lock files alike)."""
    problems = []
    for err in exc.errors():
        # A mapping key's own error is located at the key (pydantic appends "[key]").
        loc: Key = tuple(part for part in err["loc"] if part != "[key]")
        where = origin(loc)
        name = field_name(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _fields_of(model, loc[:-1]), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{where}: {name}: unknown key{hint}")
        elif kind == "missing":
            problems.append(f"{where}: {name}: required field is missing")
        elif kind == "string_type" and isinstance(err.get("input"), (int, float)) and not isinstance(err["input"], bool):
            number = str(err["input"]) if abs(err["input"]) < 10**30 else "of more than 30 digits"
            problems.append(
                f'{where}: {name}: must be a string in quotes, like {loc[-1]}: "3.11"; YAML read this one as the number {number}'
            )
        elif kind == "value_error":
            problems.append(f"{where}: {name}: {err['ctx']['error']}")
        else:
            problems.append(f"{where}: {name}: {err['msg']}")
    return problems


def _fact_problems(src: MatrixSource, m: MatrixSection) -> list[str]:
    facts = facts_mod.load()
    problems: list[str] = []

    def bad(key: Key, message: str) -> None:
        problems.append(f"{src.origin(key)}: {field_name(key)}: {message}")

    if len(set(m.flavors)) != len(m.flavors):
        bad(("flavors",), "lists a flavor twice")
    for i, name, message in rule_problems(m.layers or []):
        bad(("layers", i, name), message)

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
            if version_tuple(v.driver) < version_tuple(needed):
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


# A built image is also tagged `<id>-<first 12 of its content id>` (imagekit/identity.py), and a
# tag is at most 128 characters (Docker's reference grammar): an image id leaves room for that.
ID_MAX = grammar.TAG_MAX - 13


def _id_problems(src: MatrixSource, m: MatrixSection) -> list[str]:
    """Image ids too long for a tag, found before anything is rendered or written."""
    problems = []
    for image_id in _all_ids(m):
        if len(image_id) > ID_MAX:
            ext = next((n for n in m.extensions if image_id.endswith(f"-{n}")), None)
            key: Key = ("extensions", ext) if ext else ("variants", next((v for v in m.variants if f"-{v}-py" in image_id), ""))
            problems.append(
                f"{src.origin(key)}: {field_name(key)}: makes the image id {image_id[:40]}… {len(image_id)} characters long; "
                f"ids are at most {ID_MAX} (Docker tags are at most {grammar.TAG_MAX}, with a content suffix): shorten the name"
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
        if not _parents(m, ext.parent):
            ids = ", ".join(i for i, _ in _base_ids(m))
            bad(key + ("parent",), f"'{ext.parent}' matches no image; name a flavor ({', '.join(m.flavors)}) or an id glob over: {ids}")
        for i, pkg in enumerate(ext.packages):
            if _project_name(pkg) in in_parent:
                bad(key + ("packages", i), f"the parent already installs {in_parent[_project_name(pkg)]}; an extension cannot change it")
        for var in ext.env:
            if var.startswith("IMAGEKIT_"):
                bad(key + ("env", var), "IMAGEKIT_* variables are what the image promises to the smoke suite; imagekit sets them")
        if ext.template is not None:
            path = _resolve_path(src, key + ("template",), ext.template)
            if not path.is_file():
                bad(key + ("template",), f"{path} is not a file")
            elif path.stat().st_size > SNIPPET_MAX:
                bad(key + ("template",), f"{path} is over {SNIPPET_MAX // 1024} KiB; a snippet holds a few Dockerfile steps")
            elif not _utf8(path):
                bad(key + ("template",), f"{path} is not UTF-8 text")
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
        return value if 0 < value <= SIZE_MAX else None
    match = _SIZE.fullmatch(value)
    size = int(float(match.group(1)) * _UNITS[match.group(2) or "B"]) if match else 0
    return size if 0 < size <= SIZE_MAX else None


def _all_ids(m: MatrixSection) -> list[str]:
    return [i for i, _ in _base_ids(m)] + [f"{p}-{name}" for name, ext in m.extensions.items() for p in _parents(m, ext.parent)]


def _size_budgets(src: MatrixSource, m: MatrixSection) -> tuple[dict[str, SizeBudget], list[str]]:
    """Image id → its tightest budget; and notes on budgets that match no image, which are
    ignored: an overlay may have removed their images."""
    notes: list[str] = []
    budgets: dict[str, SizeBudget] = {}
    ids = _all_ids(m)
    for pattern, value in m.size_budgets.items():
        key: Key = ("size_budgets", pattern)
        where = f"{src.origin(key)}: {field_name(key)}"
        limit = parse_size(value) or SIZE_MAX  # the model took only sizes
        matched = [i for i in ids if fnmatch.fnmatchcase(i, pattern)]
        if not matched:
            notes.append(f"{where}: matches no image, so it checks nothing; image ids are: {', '.join(ids)}")
        for image_id in matched:
            if image_id not in budgets or limit < budgets[image_id].limit:
                budgets[image_id] = SizeBudget(limit, where)
    return budgets, notes


def _required_classes(src: MatrixSource, m: MatrixSection) -> tuple[dict[str, tuple[str, ...]], list[str], list[str]]:
    """Image id → the runner classes that must pass it (the union over every `ci.require` glob that
    matches it); problems (a class no `ci.classes` declares); notes (a glob that matches no image)."""
    ids = _all_ids(m)
    needed: dict[str, set[str]] = {}
    problems, notes = [], []
    for pattern, classes in m.ci.require.items():
        key: Key = ("ci", "require", pattern)
        where = f"{src.origin(key)}: {field_name(key)}"
        unknown = [c for c in classes if c not in m.ci.classes]
        if unknown:
            declared = ", ".join(m.ci.classes) or "none"
            problems.append(
                f"{where}: {', '.join(unknown)} is no runner class of ci.classes (declared: {declared}); declare it there with its runs_on labels"
            )
        matched = [i for i in ids if fnmatch.fnmatchcase(i, pattern)]
        if not matched:
            notes.append(f"{where}: matches no image, so it requires nothing; image ids are: {', '.join(ids)}")
        for image_id in matched:
            needed.setdefault(image_id, set()).update(classes)
    return {i: tuple(sorted(c)) for i, c in needed.items()}, problems, notes


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


def _utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return True


def _path_problems(src: MatrixSource, m: MatrixSection) -> list[str]:
    """Templates, snippets and test folders are read, rendered and run: each must lie inside the
    project (src.root), after every symlink on the way is followed."""
    paths: dict[Key, str] = {("templates",): m.templates, ("smoke",): m.smoke}
    for name, ext in m.extensions.items():
        paths |= {("extensions", name, field): value for field, value in (("template", ext.template), ("tests", ext.tests)) if value}
    problems = []
    for key, value in paths.items():
        real = Path(os.path.realpath(_resolve_path(src, key, value)))
        if not inside(src.root, real):
            problems.append(
                f"{src.origin(key)}: {field_name(key)}: {_shown(value)} leads to {real}, outside the project {src.root} or into "
                "a hidden folder; keep templates, snippets and tests inside it, out of dot-folders (symlinks included)"
            )
    return problems


def inside(root: Path, real: Path) -> bool:
    """Whether ``real`` (symlinks already followed) lies in the project and in no hidden folder or
    file of it: `.git/config` or `.env` can hold credentials."""
    return real.is_relative_to(root) and not any(part.startswith(".") for part in real.relative_to(root).parts)


def _template_digests(folder: Path, root: Path) -> dict[str, str]:
    """sha256 of each template file that the renderer would read (inside the project, at most 1 MiB);
    one it would refuse has none, and rendering says why."""
    digests = {}
    for name in (TEMPLATE, EXTENSION_TEMPLATE):
        real = Path(os.path.realpath(folder / name))
        if inside(root, real) and real.is_file() and real.stat().st_size <= 2**20:
            digests[name] = hashlib.sha256(real.read_bytes()).hexdigest()
    return digests


def build(src: MatrixSource) -> Matrix:
    try:
        m = MatrixSection.model_validate(src.data)
    except ValidationError as exc:
        raise MatrixError(validation_problems(exc, MatrixSection, src.origin)) from None
    smoke_dir = _resolve_path(src, ("smoke",), m.smoke)
    problems = _path_problems(src, m) or _fact_problems(src, m) or _extension_problems(src, m, smoke_dir) or _id_problems(src, m)
    if problems:
        raise MatrixError(problems)
    size_budgets, notes = _size_budgets(src, m)
    required, problems, require_notes = _required_classes(src, m)
    if problems:
        raise MatrixError(problems)
    notes += require_notes

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
                    layers=tuple(s.rule() for s in m.layers) if m.layers is not None else facts.layers,
                    compression=m.publish.compression,
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
    templates_dir = _resolve_path(src, ("templates",), m.templates)
    return Matrix(
        images=tuple(images + extensions),
        templates_dir=templates_dir,
        template_digests=_template_digests(templates_dir, src.root),
        smoke_dir=smoke_dir,
        source=m.source,
        files=src.files,
        registry=m.registry,
        extension_tests=extension_tests,
        snippet_origins={
            name: f"{src.origin(('extensions', name, 'template'))}: extensions.{name}.template: "
            for name, ext in m.extensions.items()
            if ext.template
        },
        size_budgets=size_budgets,
        notes=tuple(notes),
        ci=CiSpec(
            tuple(m.ci.runs_on),
            m.ci.driver_label,
            m.ci.timeout_minutes,
            staging=m.ci.staging,
            build_cache=m.ci.build_cache,
            classes={name: tuple(c.runs_on) for name, c in m.ci.classes.items()},
            require=required,
        ),
        root=src.root,
    )


def load_matrix(paths: list[Path]) -> Matrix:
    return build(load(paths))
