"""Every option of every command, declared once: its flag, its help, its environment variable and
its type (which checks the value, from the command line or the environment alike). A command lists
the options that concern it and accepts no others, so `imagekit build --dry-run` is an error, not a
real build. Environment variables are the nox-style way to hand one setting to several sessions
(`IMAGEKIT_GPUS=all nox -s build test`): a command reads those that concern it and ignores the rest.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from imagekit.core.matrix import check_registry
from imagekit.errors import ConfigurationError

DEFAULT_MATRIX = Path("matrix.yaml")
_GPUS = re.compile(r"all|none|auto|device=[0-9]{1,3}(,[0-9]{1,3}){0,63}")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _gpus(value: str) -> str:
    if not _GPUS.fullmatch(value):
        raise argparse.ArgumentTypeError("expected all, none, auto or device=0,1")
    return value


def _positive(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,7}", value) or int(value) < 1:
        raise argparse.ArgumentTypeError("expected a whole number from 1 to 9999999")
    return int(value)


def _retries(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,2}", value) or int(value) > 10:
        raise argparse.ArgumentTypeError("expected a whole number from 0 to 10")
    return int(value)


def _memory(value: str) -> str:
    if not re.fullmatch(r"[0-9]{1,15}[bkmgBKMG]?", value):
        raise argparse.ArgumentTypeError("expected a size such as 16g, 512m or a number of bytes")
    return value


def _cpus(value: str) -> float:
    cpus = float(value) if re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,3})?", value) else 0.0
    if not 0.01 <= cpus <= 4096:
        raise argparse.ArgumentTypeError("expected a number of CPUs from 0.01 to 4096, e.g. 4 or 1.5")
    return cpus


def _folder(value: str) -> Path:
    """A folder imagekit writes into: absent, or a real folder. A checkout may carry a file or a
    symlink where the default folder goes, and writes would land elsewhere."""
    path = Path(value)
    if path.is_symlink():
        raise argparse.ArgumentTypeError(f"{path} is a symlink: name a real folder; nothing was written")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder: name a folder; nothing was written")
    return path


def _registry(value: str) -> str:
    try:
        check_registry(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; pass host[:port]/path, e.g. 127.0.0.1:5000/ml, and log in with `docker login`") from None
    return value


def _runner_class(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,39}", value):
        raise argparse.ArgumentTypeError("expected a runner class name of ci.classes (lowercase letters, digits, '.', '_', '-')")
    return value


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    env: str | None = None
    kind: Literal["value", "list", "switch"] = "value"
    type: Callable[[str], Any] = str
    default: Any = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def from_environment(self) -> Any:
        """The default the environment sets, checked like the flag's value; None when unset."""
        raw = os.environ.get(self.env or "", "").strip()
        if not self.env or not raw:
            return None
        try:
            if self.kind == "switch":
                if raw.lower() not in _TRUE + _FALSE:
                    raise argparse.ArgumentTypeError("expected 1 or 0 (true/false, yes/no)")
                return raw.lower() in _TRUE
            if self.kind == "list":
                return [self._value(word) for word in raw.split()]
            return self._value(raw)
        except argparse.ArgumentTypeError as exc:
            shown = raw if len(raw) <= 80 else raw[:80] + "…"
            raise ConfigurationError(f"${self.env} ({shown!r}): {exc}", tip=f"fix or unset {self.env}; it stands for {self.flag}") from None

    def _value(self, raw: str) -> Any:
        value = self.type(raw)
        if self.choices and value not in self.choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(self.choices)}")
        return value

    def add(self, parser: argparse.ArgumentParser) -> None:
        # Left out of the namespace when not given, so `resolve` can tell the flag from the environment.
        help_text = self.help + (f" [env: {self.env}]" if self.env else "")
        if self.kind == "switch":
            # A switch the environment can set can be turned off on the command line: --no-locked.
            action = argparse.BooleanOptionalAction if self.env else "store_true"
            parser.add_argument(self.flag, action=action, default=argparse.SUPPRESS, help=help_text)
            return
        kwargs: dict[str, Any] = {"type": self.type, "default": argparse.SUPPRESS, "metavar": self.metavar, "help": help_text}
        if self.choices:
            kwargs["choices"] = self.choices
        parser.add_argument(self.flag, action="append" if self.kind == "list" else "store", **kwargs)

    def value(self, given: argparse.Namespace) -> Any:
        """The flag's value when given, else the environment's, else the default."""
        if hasattr(given, self.dest):
            return getattr(given, self.dest)
        from_env = self.from_environment()
        if from_env is not None:
            return from_env
        if self.kind != "value" or self.default is None:
            return [] if self.kind == "list" else False if self.kind == "switch" else None
        try:
            # Checked like a given value: the default `build` folder may be a file or a symlink here.
            return self._value(str(self.default))
        except argparse.ArgumentTypeError as exc:
            raise ConfigurationError(f"{self.flag} (default {self.default}): {exc}", tip=f"pass {self.flag} or set {self.env}") from None


MATRIX = Option(
    "--matrix",
    "matrix file; repeat to deep-merge overlays over it in order (default: matrix.yaml)",
    env="IMAGEKIT_MATRIX",
    kind="list",
    type=Path,
    metavar="FILE",
)
ONLY = Option("--only", "select images by id glob, e.g. '*cu121*' (repeatable)", env="IMAGEKIT_ONLY", kind="list", metavar="GLOB")
LOCK = Option("--lock", "lock file (default: the last --matrix file with a .lock suffix)", env="IMAGEKIT_LOCK", type=Path, metavar="FILE")
LOCKED = Option(
    "--locked",
    "refuse to run without a current lock file instead of writing a missing one (set it in CI)",
    env="IMAGEKIT_LOCKED",
    kind="switch",
)
OUT = Option(
    "--out", "where rendered build contexts go (default: build)", env="IMAGEKIT_OUT", type=_folder, default=Path("build"), metavar="DIR"
)
REPORTS = Option(
    "--reports", "reports folder (default: reports)", env="IMAGEKIT_REPORTS", type=_folder, default=Path("reports"), metavar="DIR"
)
JOBS = Option("--jobs", "images built at once (default: 2)", env="IMAGEKIT_JOBS", type=_positive, default=2, metavar="N")
GPUS = Option(
    "--gpus", "all, none, auto (default: GPUs if the host has them) or device=0,1", env="IMAGEKIT_GPUS", type=_gpus, default="auto"
)
REQUIRE_GPU = Option(
    "--require-gpu", "fail, rather than skip, GPU checks when no GPU is visible", env="IMAGEKIT_REQUIRE_GPU", kind="switch"
)
TIMEOUT = Option(
    "--timeout", "seconds per suite run before it is stopped (default: 1800)", env="IMAGEKIT_TIMEOUT", type=_positive, default=1800
)
MEMORY = Option("--memory", "memory limit for the test container, e.g. 16g", env="IMAGEKIT_MEMORY", type=_memory)
CPUS = Option("--cpus", "CPU limit for the test container, e.g. 4", env="IMAGEKIT_CPUS", type=_cpus)
REGISTRY = Option("--registry", "host[:port]/path to push to (default: the matrix's `registry:`)", env="IMAGEKIT_REGISTRY", type=_registry)
CACHE_REGISTRY = Option(
    "--cache-registry",
    "host[:port]/path where BuildKit's cache is read (and, on the containerd store, written): a builder with an empty cache builds unchanged steps from it",
    env="IMAGEKIT_CACHE_REGISTRY",
    type=_registry,
)
STAGING = Option(
    "--staging", "host[:port]/path to stage built images in (default: the matrix's `ci.staging`)", env="IMAGEKIT_STAGING", type=_registry
)
STAGED = Option(
    "--staged",
    "test or promote the images `imagekit stage` pushed, by the digests in this staged.json (no local build)",
    env="IMAGEKIT_STAGED",
    type=Path,
    metavar="FILE",
)
RUNNER_CLASS = Option(
    "--runner-class",
    "the matrix's `ci.classes` name of this runner: the test result is recorded in the registry under it",
    env="IMAGEKIT_RUNNER_CLASS",
    type=_runner_class,
    metavar="NAME",
)
RERUN = Option("--rerun", "run the suite even when this runner class already passed the staged digest", env="IMAGEKIT_RERUN", kind="switch")
DRY_RUN = Option("--dry-run", "show exactly what would be pushed, push nothing", env="IMAGEKIT_DRY_RUN", kind="switch")
RETRIES = Option(
    "--retries",
    "retries of a transient registry error, with doubling backoff from 2s (default: 3)",
    env="IMAGEKIT_RETRIES",
    type=_retries,
    default=3,
    metavar="N",
)
KEY = Option(
    "--key",
    "the public key that verifies the site's signatures: a cosign.pub file or a KMS URI",
    env="IMAGEKIT_VERIFY_KEY",
    metavar="PUB",
)
REQUIRE_CLASS = Option(
    "--require-class",
    "a runner class whose verified pass is required (repeatable; default: a pass on any class)",
    env="IMAGEKIT_REQUIRE_CLASS",
    kind="list",
    type=_runner_class,
    metavar="NAME",
)
FORMAT = Option("--format", "output format", type=str, default="table", choices=("table", "json"))
LIST_FORMAT = Option(
    "--format",
    "github: build cells for a workflow's strategy.matrix; github-tests: test cells (a family on a runner class)",
    type=str,
    default="table",
    choices=("table", "json", "github", "github-tests"),
)
CHANGED_AGAINST = Option(
    "--changed-against",
    "github: mark cells whose inputs differ from this earlier listing (a pull request's base) as changed",
    type=Path,
    metavar="FILE",
)
CHANGED_ONLY = Option("--changed-only", "github: list only the changed cells", kind="switch")
CHECK = Option("--check", "change nothing; exit 1 when the lock is missing or stale", kind="switch")
UPGRADE = Option("--upgrade", "re-resolve current entries too (default: keep them as locked)", kind="switch")

# Everything above, by flag: an option another command takes is named in the error (see `refused`).
ALL: tuple[Option, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Option))


def add(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    for option in options:
        option.add(parser)


def resolve(given: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """Each option's value for this run: flag, else environment, else default."""
    return {option.dest: option.value(given) for option in options}


def refused(flag: str, command: str, takes: dict[str, tuple[Option, ...]]) -> tuple[str, str] | None:
    """The error and tip for ``flag`` given to ``command``, when it is an option of other commands."""
    flag = flag.split("=", 1)[0]
    owners = sorted(name for name, options in takes.items() if any(o.flag == flag for o in options))
    if not owners:
        return None
    option = next(o for o in ALL if o.flag == flag)
    message = f"`imagekit {command}` does not take {flag}: it concerns {', '.join(f'`imagekit {o}`' for o in owners)}"
    tip = f"leave it out here; to hand it to several nox sessions at once, set {option.env}" if option.env else "leave it out here"
    return message, tip
