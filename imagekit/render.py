"""Validated image specs → Dockerfiles (Jinja2, StrictUndefined), byte-identical for equal inputs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import markupsafe

from . import grammar
from .errors import ConfigurationError
from .lock import Lock, apt_wanted
from .matrix import EXTENSION_TEMPLATE, TEMPLATE, ImageSpec, Matrix

# The build argument that carries an extension's exact parent: its content tag, or its registry
# digest once it has one (README "Extensions").
PARENT_ARG = "IMAGEKIT_PARENT"
# The build argument that carries a base image as pinned in the lock file.
BASE_ARG = "IMAGEKIT_BASE"
REQUIREMENTS = "requirements.txt"
# The script that writes each image's package manifest, sent in the build context, and where the
# manifest lands in the image (README "Package manifest").
MANIFEST_SCRIPT = "write_manifest.py"
MANIFEST_PATH = "/opt/imagekit/manifest.json"
UNLOCKED = "# {image} is not in the lock file: run `imagekit lock`. A build refuses it.\n"
# What every apt step removes after installing: the package lists and caches (size), and the files
# apt, dpkg and ldconfig stamp with the time of the run, which would make two builds' layers differ
# (bit-for-bit builds, README "Reproducible builds"). What was installed is in the package manifest.
APT_CLEANUP = (
    "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/*.log /var/log/apt/eipp.log.xz "
    "/var/log/dpkg.log /var/cache/ldconfig/aux-cache"
)


def static_labels(image: ImageSpec) -> dict[str, str]:
    """Labels fixed by the matrix cell. Labels that depend on the host or time (revision, created,
    the content id itself) are added at build time so they do not change the content id."""
    labels = {
        "org.opencontainers.image.title": image.repository.rsplit("/", 1)[-1],
        "org.opencontainers.image.version": image.id,
        "io.imagekit.image-id": image.id,
        "io.imagekit.flavor": image.flavor,
        "io.imagekit.torch": image.torch,
        "io.imagekit.torchaudio": image.torchaudio,
        "io.imagekit.python": image.python,
        "io.imagekit.cuda": image.cuda,
        "io.imagekit.wheel": image.wheel,
        "io.imagekit.wheel-cuda": image.wheel_cuda,
        "io.imagekit.driver-min": image.driver_min,
    }
    if image.extension is not None:
        labels |= {"io.imagekit.extension": image.extension.name, "io.imagekit.parent": str(image.parent)}
    return labels


def expectations(image: ImageSpec) -> dict[str, str]:
    """What the image promises, as the environment the smoke suite reads: baked into the image by
    the template, and set by `imagekit smoke` when it checks a bare host against an image id."""
    return {
        "IMAGEKIT_IMAGE_ID": image.id,
        "IMAGEKIT_EXPECT_TORCH": image.torch,
        "IMAGEKIT_EXPECT_TORCHAUDIO": image.torchaudio,
        "IMAGEKIT_EXPECT_PYTHON": image.python,
        "IMAGEKIT_EXPECT_CUDA": image.wheel_cuda,
        "IMAGEKIT_EXPECT_DRIVER_MIN": image.driver_min,
    }


def variant_drivers(images: tuple[ImageSpec, ...]) -> str:
    """ "cu118=450.80.02,cu121=525.60.13": every variant's driver minimum, so the smoke suite can
    tell a host whose driver is too old which variant it would run instead."""
    return ",".join(f"{v}={d}" for v, d in sorted({(i.variant, i.driver_min) for i in images}))


@dataclass(frozen=True)
class Rendered:
    image: ImageSpec
    # Everything sent as the build context, by relative path; the Dockerfile is one of them.
    context: dict[str, bytes]
    parent: Rendered | None = None  # an extension's parent, rendered
    base_lock: str | None = None  # a base image's pin from the lock file (digest or local image id)

    @property
    def dockerfile(self) -> str:
        return self.context["Dockerfile"].decode()

    def write(self, out_dir: Path) -> Path:
        """Write the context to ``out_dir/<image id>/``, replacing what an earlier render left."""
        target = out_dir / self.image.id
        target.mkdir(parents=True, exist_ok=True)
        for stale in target.iterdir():
            if stale.is_file() and stale.name not in self.context:
                stale.unlink()
        for name, data in self.context.items():
            (target / name).write_bytes(data)
        return target


def write_all(rendered: list[Rendered], out_dir: Path) -> list[Path]:
    """Every context into a fresh folder beside ``out_dir``, moved into place only once all of
    them are written: a failure leaves ``out_dir`` as it was."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    except OSError as exc:
        raise ConfigurationError(f"cannot write into {out_dir.parent}: {exc.strerror}") from None
    try:
        for r in rendered:
            r.write(staging / "new")
        out_dir.mkdir(exist_ok=True)
        targets = []
        for r in rendered:
            target = out_dir / r.image.id
            if target.exists():
                target.rename(staging / r.image.id)
            (staging / "new" / r.image.id).rename(target)
            targets.append(target)
        return targets
    except OSError as exc:
        raise ConfigurationError(f"cannot write the build contexts into {out_dir}: {exc.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class Renderer:
    def __init__(self, matrix: Matrix, lock: Lock | None = None) -> None:
        needed = [TEMPLATE] + ([EXTENSION_TEMPLATE] if any(i.extension for i in matrix.images) else [])
        for name in needed:
            if not (matrix.templates_dir / name).is_file():
                raise ConfigurationError(
                    f"template {matrix.templates_dir / name} not found",
                    tip=f"set `templates:` in the matrix to the folder holding {', '.join(needed)} (relative to the matrix file)",
                )
        self._matrix = matrix
        self._lock = lock
        # Templates and snippets come from other teams' pull requests: the sandbox keeps them from
        # Python internals (no `__class__`, `__globals__`, no calls that change state), the loader
        # from files outside the project, and `finalize` from writing a value that would need
        # escaping in a Dockerfile (validation refused those first; this is the second line).
        self._env = _Sandbox(
            loader=_ProjectLoader(matrix.templates_dir, matrix.root),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # noqa: S701 - Dockerfiles, not HTML: finalize guards each value instead
            finalize=_one_line,
        )
        for name in ("cycler", "joiner", "lipsum"):  # nothing a Dockerfile needs
            self._env.globals.pop(name, None)

    def render(self, image: ImageSpec) -> Rendered:
        ext = image.extension
        locked = self._lock.images.get(image.id) if self._lock else None
        requirements = (locked.requirements if locked else UNLOCKED.format(image=image.id)).encode()
        manifest = {"script": MANIFEST_SCRIPT, "path": MANIFEST_PATH, "dir": MANIFEST_PATH.rsplit("/", 1)[0]}
        values = {
            "image": image,
            "labels": static_labels(image),
            "expect": expectations(image),
            "manifest": manifest,
            "apt_cleanup": APT_CLEANUP,
        }
        files = {REQUIREMENTS: requirements, MANIFEST_SCRIPT: _manifest_script()}
        # apt-<stage>.txt: the lock's pins, one per line; unlocked, the names alone (a build refuses that).
        apt = locked.apt if locked and locked.apt is not None else apt_wanted(image)
        files |= {apt_file(stage): "".join(f"{p}\n" for p in apt.get(stage, [])).encode() for stage in apt_wanted(image)}
        values["apt"] = {stage: apt_file(stage) for stage in apt_wanted(image)}
        if ext is None:
            text = self._render(TEMPLATE, base_arg=BASE_ARG, **values)
            return Rendered(image, {"Dockerfile": text.encode(), **files}, base_lock=locked.base if locked else None)
        # An extension's own snippet is a template too, rendered with the same values.
        snippet = ""
        if ext.snippet is not None:
            where = f"{self._matrix.snippet_origins.get(ext.name, '')}{ext.snippet_name}"
            snippet = self._render(where, source=ext.snippet, **values)
        # The snippet's own lines are Dockerfile steps by design; they enter as written.
        snippet = markupsafe.Markup(snippet.strip("\n"))  # noqa: S704 - rendered in the sandbox above
        env = {key: _dockerfile_quote(value) for key, value in ext.env}
        text = self._render(EXTENSION_TEMPLATE, ext=ext, env=env, snippet=snippet, parent_arg=PARENT_ARG, **values)
        parent = self.render(self._matrix.image(str(image.parent)))
        return Rendered(image, {"Dockerfile": text.encode(), **files}, parent=parent)

    def _render(self, name: str, source: str | None = None, **values: Any) -> str:
        """``name``: a template in the templates folder; with ``source``, where that text came from."""
        try:
            template = self._env.from_string(source) if source is not None else self._env.get_template(name)
            return template.render(**values)
        except jinja2.TemplateError as exc:
            line = _template_line(exc)
            where = name if source is not None else str(self._matrix.templates_dir / name)
            raise ConfigurationError(
                f"{where}{f':{line}' if line else ''}: cannot render {values['image'].id}: {exc.message}",
                tip='templates see the image\'s fields, run sandboxed, and include only files inside the project (README "Security")',
            ) from None
        except (RecursionError, MemoryError, OverflowError):
            raise ConfigurationError(f"{name}: cannot render {values['image'].id}: the template asks for too much") from None


class _Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The immutable sandbox, and no arithmetic that would take the renderer minutes or gigabytes
    (`10 ** 10 ** 9`, `'x' * 10 ** 9`): a template renders a Dockerfile, not a computation."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            raise jinja2.sandbox.SecurityError("'**' is not allowed in templates")
        sizes = [len(x) if isinstance(x, str | list | tuple) else abs(x) if isinstance(x, int) else 1 for x in (left, right)]
        if sizes[0] * sizes[1] > 100_000:
            raise jinja2.sandbox.SecurityError("a product over 100000 is more than a Dockerfile needs")
        return super().call_binop(context, operator, left, right)


def _template_line(exc: jinja2.TemplateError) -> int | None:
    """The template line an error came from: syntax errors carry it; for runtime errors Jinja
    rewrites the traceback so that template frames point at template lines."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.lineno
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>" or tb.tb_frame.f_globals.get("__jinja_template__") is not None:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class _ProjectLoader(jinja2.FileSystemLoader):
    """Templates from one folder, and only files whose real path (symlinks followed) is inside
    the project: an `{% include %}` or a symlink cannot read the rest of the machine."""

    def __init__(self, folder: Path, root: Path) -> None:
        super().__init__(folder, followlinks=False)
        self._root = root

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = super().get_source(environment, template)
        if filename is None or not Path(os.path.realpath(filename)).is_relative_to(self._root):
            raise jinja2.TemplateNotFound(f"{template} (it leads outside the project {self._root})")
        return source, filename, uptodate


def _one_line(value: Any) -> Any:
    """Every value a template writes is one line without control characters, unless imagekit
    marked it as Dockerfile text of its own (Markup: a snippet's rendered steps)."""
    if isinstance(value, markupsafe.Markup) or not isinstance(value, str):
        return value
    if not grammar.printable(value):
        raise jinja2.TemplateRuntimeError(f"refusing to write {value[:40]!r}: a value must be one line without control characters")
    return value


def apt_file(stage: str) -> str:
    return f"apt-{stage}.txt"


def _manifest_script() -> bytes:
    return resources.files("imagekit").joinpath(f"data/{MANIFEST_SCRIPT}").read_bytes()


def _dockerfile_quote(value: str) -> str:
    """A double-quoted Dockerfile ENV value: quotes and backslashes escaped, `$VAR` still expands."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
