"""Validated image specs → Dockerfiles (Jinja2, StrictUndefined), byte-identical for equal inputs."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.filters
import jinja2.loaders
import jinja2.sandbox
import markupsafe

from imagekit.core import grammar, layers
from imagekit.core.lock import Lock, apt_wanted
from imagekit.core.manifest import MANIFEST_PATH, MANIFEST_SCRIPT
from imagekit.core.matrix import EXTENSION_TEMPLATE, TEMPLATE, ImageSpec, Matrix, inside
from imagekit.errors import ConfigurationError

# The build argument that carries an extension's exact parent: its content tag, or its registry
# digest once it has one (README "Extensions").
PARENT_ARG = "IMAGEKIT_PARENT"
# The build argument that carries a base image as pinned in the lock file.
BASE_ARG = "IMAGEKIT_BASE"
REQUIREMENTS = "requirements.txt"  # an extension's set; a base image's comes as one file per layer
# The layer plan as the package manifest records it (name → packages), sent in the build context.
LAYERS_FILE = "layers.json"
# The script that writes each image's package manifest, sent in the build context, and where the
# manifest lands in the image (README "Package manifest").
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
    # The layer plan as built: (layer, its pip packages), an extension's parent's then its own.
    layers: tuple[tuple[str, tuple[str, ...]], ...] = ()

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
    moved: list[tuple[Path, Path]] = []  # (from, to), in order, to undo on failure
    try:
        for r in rendered:
            r.write(staging / "new")
        out_dir.mkdir(exist_ok=True)
        for r in rendered:
            target = out_dir / r.image.id
            if target.exists() or target.is_symlink():
                target.rename(staging / r.image.id)
                moved.append((target, staging / r.image.id))
            (staging / "new" / r.image.id).rename(target)
            moved.append((staging / "new" / r.image.id, target))
        return [out_dir / r.image.id for r in rendered]
    except OSError as exc:
        for source, destination in reversed(moved):  # the earlier contexts back in place
            with contextlib.suppress(OSError):
                destination.rename(source)
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
        manifest = {"script": MANIFEST_SCRIPT, "path": MANIFEST_PATH, "dir": MANIFEST_PATH.rsplit("/", 1)[0], "layers": LAYERS_FILE}
        values = {
            "image": image,
            "labels": static_labels(image),
            "expect": expectations(image),
            "manifest": manifest,
            "apt_cleanup": APT_CLEANUP,
        }
        files = {MANIFEST_SCRIPT: _manifest_script()}
        # apt-<stage>.txt: the lock's pins, one per line; unlocked, the names alone (a build refuses that).
        apt = locked.apt if locked and locked.apt is not None else apt_wanted(image)
        files |= {apt_file(stage): "".join(f"{p}\n" for p in apt.get(stage, [])).encode() for stage in apt_wanted(image)}
        values["apt"] = {stage: apt_file(stage) for stage in apt_wanted(image)}
        if ext is None:
            planned = plan(image, locked.requirements if locked else None)
            files |= {layer.file: layer.text.encode() for layer in planned}
            shown = tuple((layer.name, tuple(p for p in layer.packages if p)) for layer in planned)
            files[LAYERS_FILE] = _layers_json(shown)
            values["layers"] = [{"name": layer.name, "file": layer.file, "rule": _rule_text(image, layer.name)} for layer in planned]
            text = self._render(TEMPLATE, base_arg=BASE_ARG, **values)
            return Rendered(image, {"Dockerfile": text.encode(), **files}, base_lock=locked.base if locked else None, layers=shown)
        # An extension installs its whole set on top of its parent's (pip skips what is there): one layer more.
        files[REQUIREMENTS] = requirements
        parent = self.render(self._matrix.image(str(image.parent)))
        had = {p for _, packages in parent.layers for p in packages}
        shown = (*parent.layers, (layers.EXTENSION, tuple(r.name for r in layers.parse(requirements.decode()) if r.name not in had)))
        files[LAYERS_FILE] = _layers_json(shown)
        # An extension's own snippet is a template too, rendered with the same values.
        snippet = ""
        if ext.snippet is not None:
            where = f"{self._matrix.snippet_origins.get(ext.name, '')}{ext.snippet_name}"
            snippet = self._render(where, source=ext.snippet, **values)
        # The snippet's own lines are Dockerfile steps by design; they enter as written.
        snippet = markupsafe.Markup(snippet.strip("\n"))  # noqa: S704 - rendered in the sandbox above
        env = {key: _dockerfile_quote(value) for key, value in ext.env}
        text = self._render(EXTENSION_TEMPLATE, ext=ext, env=env, snippet=snippet, parent_arg=PARENT_ARG, **values)
        return Rendered(image, {"Dockerfile": text.encode(), **files}, parent=parent, layers=shown)

    def _render(self, name: str, source: str | None = None, **values: Any) -> str:
        """``name``: a template in the templates folder; with ``source``, where that text came from."""
        where = name if source is not None else str(self._matrix.templates_dir / name)
        try:
            with _deadline(RENDER_SECONDS):
                template = self._env.from_string(source) if source is not None else self._env.get_template(name)
                text = template.render(**values)
        except jinja2.TemplateError as exc:
            line = _template_line(exc)
            raise ConfigurationError(
                f"{where}{f':{line}' if line else ''}: cannot render {values['image'].id}: {exc.message}",
                tip='templates see the image\'s fields, run sandboxed, and include only files inside the project (README "Security")',
            ) from None
        except _RenderTimeout:
            raise ConfigurationError(f"{where}: cannot render {values['image'].id}: it took more than {RENDER_SECONDS} s") from None
        except Exception as exc:  # noqa: BLE001 - a template is untrusted code: whatever it raises is its error
            line = _template_line(exc)
            raise ConfigurationError(
                f"{where}{f':{line}' if line else ''}: cannot render {values['image'].id}: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        if len(text) > OUTPUT_MAX:
            raise ConfigurationError(f"{where}: cannot render {values['image'].id}: it writes over {OUTPUT_MAX // 1024} KiB")
        return text


# What a template may spend: a Dockerfile is a few kilobytes, rendered in milliseconds.
RENDER_SECONDS = 10
OUTPUT_MAX = 1 << 20
_SIZE_MAX = 100_000  # the largest number, string or list a template may make or ask a function for


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict):
        return len(value)
    return abs(value) if isinstance(value, int) and not isinstance(value, bool) else 1


class _Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The immutable sandbox, and nothing that would take the renderer minutes or gigabytes:
    no `**`, no `%` formatting or str.format (format specs ask for any width), no product, sum,
    function or filter argument over _SIZE_MAX (`'x' * 10 ** 9`, `center(10 ** 9)`). Loops and
    the rest are bounded by the clock (Renderer._render). A template renders a Dockerfile, not a
    computation."""

    intercepted_binops = frozenset({"**", "*", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded(f) for name, f in self.filters.items()}

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" or (operator == "%" and isinstance(left, str)):
            raise jinja2.sandbox.SecurityError(f"{operator!r} is not allowed in templates")
        if operator == "*" and _size(left) * _size(right) > _SIZE_MAX:
            raise jinja2.sandbox.SecurityError(f"a product over {_SIZE_MAX} is more than a Dockerfile needs")
        if operator == "+" and _size(left) + _size(right) > _SIZE_MAX:
            raise jinja2.sandbox.SecurityError(f"a sum over {_SIZE_MAX} is more than a Dockerfile needs")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is not None:  # a format spec asks for any width
            raise jinja2.sandbox.SecurityError("str.format is not allowed in templates")
        return None

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        _check_arguments(args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if any(isinstance(a, int) and _size(a) > _SIZE_MAX for a in (*args, *kwargs.values())):
        raise jinja2.sandbox.SecurityError(f"an argument over {_SIZE_MAX} is more than a Dockerfile needs")


def _bounded(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose other arguments (widths, counts) are held to _SIZE_MAX; the value it filters
    is what the template already holds."""
    # Filters marked with jinja_pass_arg take the environment or context before the value.
    skip = 2 if hasattr(function, "jinja_pass_arg") else 1

    @functools.wraps(function)  # keeps the jinja_pass_arg mark
    def filtered(*args: Any, **kwargs: Any) -> Any:
        if function is jinja2.filters.do_format:
            raise jinja2.sandbox.SecurityError("the format filter is not allowed in templates")
        _check_arguments(args[skip:], kwargs)
        return function(*args, **kwargs)

    return filtered


class _RenderTimeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Stop a render that runs past ``seconds`` (a loop of loops): SIGALRM, which only the main
    thread can take; elsewhere the operators and arguments bounds are the limit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _RenderTimeout

    # An outer timer (a caller's own deadline) is put back afterwards, less the time spent here.
    outer, started = signal.getitimer(signal.ITIMER_REAL)[0], time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))


def _template_line(exc: BaseException) -> int | None:
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
        # Checked before anything is read: the path, symlinks followed, inside the project and not
        # in a hidden folder or file (.git/config, .env hold credentials).
        for folder in self.searchpath:
            real = Path(os.path.realpath(os.path.join(folder, *jinja2.loaders.split_template_path(template))))
            if not real.is_file():
                continue
            if not inside(self._root, real):
                raise jinja2.TemplateNotFound(f"{template} (it leads outside the project {self._root}, or into a hidden file)")
            if real.stat().st_size > 2**20:
                raise jinja2.TemplateNotFound(f"{template} (over 1 MiB)")
            try:
                return super().get_source(environment, template)
            except UnicodeDecodeError:
                raise jinja2.TemplateNotFound(f"{template} (not UTF-8 text)") from None
        raise jinja2.TemplateNotFound(template)


def _one_line(value: Any) -> Any:
    """Every value a template writes is one line without control characters, unless imagekit
    marked it as Dockerfile text of its own (Markup: a snippet's rendered steps)."""
    if isinstance(value, markupsafe.Markup) or not isinstance(value, str):
        return value
    if not grammar.printable(value):
        raise jinja2.TemplateRuntimeError(f"refusing to write {value[:40]!r}: a value must be one line without control characters")
    return value


def plan(image: ImageSpec, requirements: str | None) -> list[layers.Layer]:
    """``image``'s layers from its locked set; unlocked (a render for reading: a build refuses it),
    one per rule and `rest`, each file saying it is not locked."""
    if requirements is not None:
        return layers.plan(requirements, image.layers)
    placeholder = layers.Requirement("", "", UNLOCKED.format(image=image.id), frozenset())
    return [layers.Layer(name, (placeholder,)) for name in [r.name for r in image.layers] + [layers.REST]]


def _rule_text(image: ImageSpec, name: str) -> str:
    """What a layer holds, as its rule says it (for the comment above its build step)."""
    rule = next((r for r in image.layers if r.name == name), None)
    if rule is None:
        return "what no other layer takes"
    return ", ".join(rule.packages) + (", with what they need that no layer before holds" if rule.with_dependencies else "")


def _layers_json(planned: tuple[tuple[str, tuple[str, ...]], ...]) -> bytes:
    return (json.dumps([{"name": name, "packages": list(packages)} for name, packages in planned], indent=1) + "\n").encode()


def apt_file(stage: str) -> str:
    return f"apt-{stage}.txt"


def _manifest_script() -> bytes:
    return resources.files("imagekit").joinpath(f"data/{MANIFEST_SCRIPT}").read_bytes()


def _dockerfile_quote(value: str) -> str:
    """A double-quoted Dockerfile ENV value: quotes and backslashes escaped, `$VAR` still expands."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
