"""Read matrix files into one merged mapping, remembering which file and line set every value.

Later files are deep-merged over earlier ones, like compose override files: mappings merge key by
key, anything else (lists, scalars) replaces, and ``null`` removes a key so an overlay can drop a
variant. Every value keeps its origin so validation errors can name file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import MatrixError

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

    def origin(self, key: Key) -> Origin:
        """The origin of ``key``, or of its closest ancestor that exists (a missing field's parent)."""
        for end in range(len(key), -1, -1):
            found = self.origins.get(tuple(key[:end]))
            if found is not None:
                return found
        return Origin(self.files[-1], 1)


def field_name(key: Key) -> str:
    return ".".join(str(k) for k in key) or "(top level)"


def _from_node(node: yaml.Node, key: Key, file: Path, origins: dict[Key, Origin], problems: list[str]) -> Any:
    origins[key] = Origin(file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for k_node, v_node in node.value:
            if not isinstance(k_node, yaml.ScalarNode):
                problems.append(f"{file}:{k_node.start_mark.line + 1}: {field_name(key)}: keys must be plain strings")
                continue
            k = k_node.value
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
    return yaml.safe_load(yaml.serialize(node))


def load_file(path: Path) -> tuple[dict[str, Any], dict[Key, Origin]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MatrixError([f"{path}: no such matrix file"]) from None
    except OSError as exc:
        raise MatrixError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise MatrixError([f"{path}:{line}: not valid YAML: {exc.problem}"]) from None
    if node is None:
        return {}, {(): Origin(path, 1)}
    origins: dict[Key, Origin] = {}
    problems: list[str] = []
    data = _from_node(node, (), path, origins, problems)
    if problems:
        raise MatrixError(problems)
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
    return MatrixSource(data=data, origins=origins, files=tuple(paths))
