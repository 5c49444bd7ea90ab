"""Read matrix files into one merged mapping, remembering which file and line set every value.

Later files are deep-merged over earlier ones, like compose override files: mappings merge key by
key, anything else (lists, scalars) replaces, and ``null`` removes a key so an overlay can drop a
variant. Every value keeps its origin so validation errors can name file, line and field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from imagekit.core import grammar
from imagekit.errors import MatrixError

Key = tuple[str | int, ...]


@dataclass(frozen=True)
class Origin:
    file: Path
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class MatrixSource:
    data: dict[str, Any]
    origins: dict[Key, Origin]
    files: tuple[Path, ...]
    # The project the matrix belongs to (project_root); every path it names must lie inside it.
    root: Path

    def origin(self, key: Key) -> Origin:
        return locate(self.origins, key, Origin(self.files[-1], 1))


def locate(origins: dict[Key, Origin], key: Key, fallback: Origin) -> Origin:
    """The origin of ``key``, or of its closest ancestor that exists (a missing field's parent)."""
    for end in range(len(key), -1, -1):
        found = origins.get(tuple(key[:end]))
        if found is not None:
            return found
    return fallback


def field_name(key: Key) -> str:
    return ".".join(str(k) for k in key) or "(top level)"


# Bounds on what a YAML file may ask of the reader, far above any real matrix or lock: nesting
# (PyYAML composes recursively), nodes after aliases are expanded (a "billion laughs" file of a
# few hundred bytes expands to billions), and bytes.
MAX_DEPTH = 32
MAX_NODES = 200_000
MAX_BYTES = 4 * 2**20
# libyaml where PyYAML has it (it does on every platform with wheels): the pure-Python parser
# takes seconds per megabyte.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Plain data only: an explicit tag other than these (`!!python/…`, `!custom`) is refused.
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}


def _from_node(node: yaml.Node, key: Key, file: Path, origins: dict[Key, Origin], problems: list[str]) -> Any:
    origins[key] = Origin(file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for k_node, v_node in node.value:
            if not isinstance(k_node, yaml.ScalarNode):
                problems.append(f"{file}:{k_node.start_mark.line + 1}: {field_name(key)}: keys must be plain strings")
                continue
            k = k_node.value
            if not grammar.printable(k):
                # Shown with its control characters replaced: a raw newline or escape in a message
                # could forge log lines (GitHub reads `::error` lines as commands) or drive a terminal.
                shown = "".join(c if grammar.printable(c) else "?" for c in k[:60])
                problems.append(f"{file}:{k_node.start_mark.line + 1}: {field_name(key + (shown,))}: a key must be a name on one line")
                continue
            if k in out:
                problems.append(
                    f"{file}:{k_node.start_mark.line + 1}: {field_name(key + (k,))}: duplicate key "
                    f"(first at line {origins[key + (k,)].line}); YAML would silently keep only the last"
                )
                continue
            out[k] = _from_node(v_node, key + (k,), file, origins, problems)
            # A field's line is its key's line, which is where a reader looks for it.
            origins[key + (k,)] = Origin(file, k_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_from_node(item, key + (i,), file, origins, problems) for i, item in enumerate(node.value)]
    # Let PyYAML resolve scalars (ints, floats, bools, null) exactly as safe_load would.
    try:
        return yaml.safe_load(yaml.serialize(node))
    except (yaml.YAMLError, ValueError) as exc:  # e.g. an integer of more digits than Python converts
        problems.append(f"{file}:{node.start_mark.line + 1}: {field_name(key)}: cannot be read as a value ({str(exc)[:80]})")
        return None


def _scan(text: str, path: Path) -> None:
    """Refuse, before composing, what the composer would trip over: tags that are not plain data
    and nesting deeper than MAX_DEPTH. Events stream without recursion."""
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=_LOADER)):
        if count > MAX_NODES:
            raise MatrixError([f"{path}:{event.start_mark.line + 1}: holds more than {MAX_NODES} values; no real file is that large"])
        line = event.start_mark.line + 1
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _PLAIN_TAGS:
            raise MatrixError([f"{path}:{line}: the YAML tag {tag[:60]!r} is not allowed: these files hold plain data (remove the tag)"])
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise MatrixError([f"{path}:{line}: nested more than {MAX_DEPTH} levels deep; no field of this file nests that deep"])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """Refuse what ``root`` becomes once every alias is expanded, worked out without expanding
    them: more than MAX_NODES values, nesting deeper than MAX_DEPTH, or a node that contains
    itself (a recursive anchor)."""
    shapes: dict[int, tuple[int, int]] = {}  # id(node) → (values, depth), both capped
    on_path: set[int] = set()

    def shape(node: yaml.Node) -> tuple[int, int]:
        if id(node) in shapes:
            return shapes[id(node)]
        if id(node) in on_path:
            raise MatrixError([f"{path}:{node.start_mark.line + 1}: an anchor refers to itself; write the value out"])
        on_path.add(id(node))
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
        inner = [shape(c) for c in children] if isinstance(node, yaml.CollectionNode) else []
        on_path.discard(id(node))
        shapes[id(node)] = (min(1 + sum(v for v, _ in inner), MAX_NODES + 1), 1 + max((d for _, d in inner), default=0))
        if shapes[id(node)][0] > MAX_NODES:
            raise MatrixError([f"{path}:1: holds more than {MAX_NODES} values once its aliases are expanded; write the values out"])
        if shapes[id(node)][1] > MAX_DEPTH:
            raise MatrixError([f"{path}:{node.start_mark.line + 1}: aliases nest values more than {MAX_DEPTH} levels deep; write them out"])
        return shapes[id(node)]

    shape(root)


def read_yaml(path: Path, what: str) -> tuple[Any, dict[Key, Origin]]:
    """One YAML document of plain data, with the origin of every value: UTF-8 only, no tags but
    the plain ones, bounded in size, depth and alias expansion. Every problem is a MatrixError
    naming the file and line. ``what`` names the kind of file in messages ("matrix", "lock")."""
    try:
        if path.exists() and not path.is_file():  # a FIFO or a device (/dev/zero) would never end
            raise MatrixError([f"{path}: not a regular file"])
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise MatrixError([f"{path}: no such {what} file"]) from None
    except OSError as exc:
        raise MatrixError([f"{path}: cannot read: {exc.strerror}"]) from None
    if len(raw) > MAX_BYTES:
        raise MatrixError([f"{path}: too large for a {what} file (at most {MAX_BYTES // 2**20} MiB)"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise MatrixError([f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x}); save the file as UTF-8"]) from None
    try:
        _scan(text, path)
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise MatrixError([f"{path}:{line}: not valid YAML: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise MatrixError([f"{path}: not valid YAML: {str(exc)[:200]}"]) from None
    if node is None:
        return None, {(): Origin(path, 1)}
    origins: dict[Key, Origin] = {}
    problems: list[str] = []
    _check_expansion(node, path)
    data = _from_node(node, (), path, origins, problems)
    if problems:
        raise MatrixError(problems)
    return data, origins


def load_file(path: Path) -> tuple[dict[str, Any], dict[Key, Origin]]:
    data, origins = read_yaml(path, "matrix")
    if data is None:
        return {}, origins
    if not isinstance(data, dict):
        raise MatrixError([f"{path}:{origins[()].line}: a matrix file must be a mapping at the top level"])
    return data, origins


def _drop(origins: dict[Key, Origin], key: Key) -> None:
    for k in [k for k in origins if k[: len(key)] == key]:
        del origins[k]


def _merge(base: dict[str, Any], over: dict[str, Any], key: Key, origins: dict[Key, Origin], over_origins: dict[Key, Origin]) -> None:
    for k, value in over.items():
        sub = key + (k,)
        if value is None:
            base.pop(k, None)
            _drop(origins, sub)
            # A required field removed here is reported at the line that removed it.
            origins[sub] = over_origins[sub]
        elif isinstance(value, dict) and isinstance(base.get(k), dict):
            origins[sub] = over_origins[sub]
            _merge(base[k], value, sub, origins, over_origins)
        else:
            base[k] = value
            _drop(origins, sub)
            origins.update({o: v for o, v in over_origins.items() if o[: len(sub)] == sub})


def load(paths: list[Path]) -> MatrixSource:
    """Load and deep-merge ``paths`` in order; the first file is the matrix, the rest overlays."""
    if not paths:
        raise MatrixError(["no matrix file given (pass --matrix FILE)"])
    data, origins = load_file(paths[0])
    for path in paths[1:]:
        over, over_origins = load_file(path)
        _merge(data, over, (), origins, over_origins)
    return MatrixSource(data=data, origins=origins, files=tuple(paths), root=project_root(paths[0]))


def project_root(first: Path) -> Path:
    """The git work tree holding the first matrix file, else that file's own folder: templates,
    snippets and tests are read from inside it only, so another team's overlay cannot name files
    elsewhere on the machine that renders it."""
    start = Path(os.path.realpath(first)).parent
    return next((folder for folder in (start, *start.parents) if (folder / ".git").exists()), start)


JSON_SHOWN = 20  # problems listed; a file broken throughout would otherwise list thousands


def json_problems(exc: ValidationError) -> list[str]:
    """pydantic's errors for a JSON input as `field: message`: JSON has no lines to point at, and
    none of the YAML advice (quoting) applies. Keys are shown on one line and short: they are the
    input's to choose."""
    wording = {"missing": "required field is missing", "extra_forbidden": "unknown key"}
    problems = []
    for err in exc.errors():
        key = tuple("".join(c if grammar.printable(c) else "?" for c in str(p)[:60]) for p in err["loc"] if p != "[key]")
        message = str(err["ctx"]["error"]) if err["type"] == "value_error" else wording.get(err["type"], err["msg"])
        problems.append(f"{field_name(key)}: {message}")
    return problems


def listed(problems: list[str]) -> str:
    """Problems after a sentence: one in brackets, more on lines of their own, at most JSON_SHOWN."""
    shown = problems[:JSON_SHOWN] + ([f"… and {len(problems) - JSON_SHOWN} more"] if len(problems) > JSON_SHOWN else [])
    return f" ({shown[0]})" if len(shown) == 1 else ":\n" + "\n".join(f"  {p}" for p in shown)
