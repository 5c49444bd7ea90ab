"""The layer plan: an image's locked pip set split into ordered groups, each installed by its own
build step, so each is a layer of its own (README "Layers").

A torch image is almost all pip packages, and one `pip install` of the whole set makes one layer of
~5.5 GB that changes whenever any pin does. Ordered by how rarely they change — torch's CUDA
wheels (with the wheel channel), then torch itself (with the release), then the rest — a change to
a pin in `packages` makes a new layer of megabytes, and the gigabytes below it stay the same
layers, in every registry and on every node that already holds them.

Pure: it reads the requirement text the lock holds (uv's output: `name==version \\`, hash lines,
`# via` comments) and the rules the matrix gives; it writes nothing."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr

from imagekit.core import grammar

# Packages no rule takes go into a last layer of this name; an extension's own packages are the
# layer `extension` on top of its parent's. A rule may use neither name.
REST = "rest"
EXTENSION = "extension"
RESERVED = {REST: "the layer of what no rule takes", EXTENSION: "the layer of an extension's own packages"}

_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)(?: ; [^\\]*)? ?\\?")
_VIA_ONE = re.compile(r" +# via (\S+)")
_VIA_MANY = re.compile(r" +#   (\S+)")


def normalise(name: str) -> str:
    """A project name as PEP 503 compares them: `Typing_Extensions` → `typing-extensions`."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Rule:
    """One group of the plan: the packages whose (normalised) names match ``packages`` (globs),
    and with ``with_dependencies`` also what they need that no earlier group holds."""

    name: str
    packages: tuple[str, ...]
    with_dependencies: bool = False


def _held(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not grammar.full(pattern, value):
            raise ValueError(f"{value[:60]!r} is not {what}")
        return value

    return AfterValidator(check)


class RuleSection(BaseModel):
    """A rule as the matrix (`layers:`) and the facts file (the default plan) write it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[StrictStr, _held(grammar.LAYER_NAME, "a layer name: lowercase letters, digits and '-', at most 24")]
    packages: list[
        Annotated[StrictStr, _held(grammar.PACKAGE_GLOB, "a glob over lowercase pip project names, such as nvidia-* or torch")]
    ] = Field(min_length=1, max_length=100)
    with_dependencies: StrictBool = False

    def rule(self) -> Rule:
        return Rule(self.name, tuple(self.packages), self.with_dependencies)


MAX_RULES = 16  # a layer each, beside the base's and the image's own; overlay filesystems stack ~120


def rule_problems(rules: list[RuleSection]) -> list[tuple[int, str, str]]:
    """(index, field, message) for what the shape cannot say: names once each, `rest` and
    `extension` reserved."""
    problems = []
    seen: set[str] = set()
    for i, section in enumerate(rules):
        if section.name in RESERVED:
            problems.append((i, "name", f"'{section.name}' is {RESERVED[section.name]}; name this one otherwise"))
        elif section.name in seen:
            problems.append((i, "name", f"'{section.name}' names two layers"))
        seen.add(section.name)
    return problems


@dataclass(frozen=True)
class Requirement:
    name: str  # normalised
    version: str
    # Its pin and hash lines. Not uv's comments: `# via` changes whenever another package starts to
    # need it, and a layer's file must change only when what the layer installs does.
    text: str
    via: frozenset[str]  # normalised names of the packages that need it (uv's annotation)


@dataclass(frozen=True)
class Layer:
    name: str
    requirements: tuple[Requirement, ...]

    @property
    def file(self) -> str:
        """Its requirement set's name in the build context."""
        return f"requirements-{self.name}.txt"

    @property
    def text(self) -> str:
        return "".join(r.text for r in self.requirements)

    @property
    def packages(self) -> list[str]:
        return [r.name for r in self.requirements]


def parse(requirements: str) -> list[Requirement]:
    """The packages of a hashed requirement set, in order, each with its own lines. The lock file
    held the text to its grammar when it was read (core/lock.py)."""
    found: list[Requirement] = []
    name = version = ""
    lines: list[str] = []
    via: set[str] = set()

    def close() -> None:
        if name:
            found.append(Requirement(normalise(name), version, "".join(f"{line}\n" for line in lines), frozenset(via)))

    for line in requirements.split("\n"):
        pin = _PIN.fullmatch(line.rstrip())
        if pin:
            close()
            name, version, lines, via = pin.group(1), pin.group(2), [line], set()
            continue
        if not name or not line.strip():
            continue
        if not line.lstrip().startswith("#"):
            lines.append(line)
        needed_by = _VIA_ONE.fullmatch(line) or _VIA_MANY.fullmatch(line)
        if needed_by and not needed_by.group(1).startswith("-"):  # `-r requirements.in`, `-c constraints.txt`: asked for
            via.add(normalise(needed_by.group(1)))
    close()
    return found


def plan(requirements: str, rules: tuple[Rule, ...]) -> list[Layer]:
    """The layers of ``requirements`` under ``rules``, in order: each package in the first group
    whose rule matches it (or that takes it as a dependency), the unmatched ones in a last `rest`
    group, empty groups left out. Together the layers hold exactly the set, each package once."""
    packages = parse(requirements)
    by_name = {r.name: r for r in packages}
    needs: dict[str, set[str]] = {r.name: set() for r in packages}
    for r in packages:
        for parent in r.via:
            needs.setdefault(parent, set()).add(r.name)
    taken: set[str] = set()
    layers: list[Layer] = []
    for rule in (*rules, Rule(REST, ("*",))):
        chosen = [r.name for r in packages if r.name not in taken and any(fnmatch.fnmatchcase(r.name, p) for p in rule.packages)]
        taken |= set(chosen)
        if rule.with_dependencies:
            todo = list(chosen)
            while todo:
                for dependency in sorted(needs.get(todo.pop(), ())):
                    if dependency in by_name and dependency not in taken:
                        taken.add(dependency)
                        chosen.append(dependency)
                        todo.append(dependency)
        if chosen:
            # In the set's own order (uv sorts it by name): the file reads like the lock.
            layers.append(Layer(rule.name, tuple(r for r in packages if r.name in set(chosen))))
    return layers


# --------------------------------------------------------------------------------------------------
# Which layers two images share (`imagekit layers A B`): what a host holding A must pull to get B.


@dataclass(frozen=True)
class LayerInfo:
    diff_id: str  # the digest of the layer's uncompressed tar: the same layer in any compression
    size: int | None  # bytes: compressed as a registry serves it, else unpacked; None: not known
    blob: str | None = None  # the compressed blob's digest, for an image read from a registry
    created_by: str = ""


@dataclass(frozen=True)
class ImageLayers:
    ref: str
    layers: tuple[LayerInfo, ...]
    in_registry: bool  # sizes compressed, blobs known


@dataclass(frozen=True)
class Transfer:
    """B's layers, each marked whether A has it already."""

    a: ImageLayers
    b: ImageLayers
    have: tuple[bool, ...]
    by: str  # "blob" (both in a registry: what a pull skips) or "content" (diff_id)

    @property
    def pulled(self) -> list[LayerInfo]:
        return [layer for layer, had in zip(self.b.layers, self.have, strict=True) if not had]

    @property
    def pulled_bytes(self) -> int | None:
        sizes = [layer.size for layer in self.pulled]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)


def transfer(a: ImageLayers, b: ImageLayers) -> Transfer:
    """What a host holding ``a`` lacks of ``b``. Two images in a registry compare compressed blobs,
    which is what a pull fetches or skips (the same files in zstd and in gzip are two blobs);
    otherwise layers compare by content (diff_id), as an engine stores them."""
    if a.in_registry and b.in_registry:
        held = {layer.blob for layer in a.layers}
        return Transfer(a, b, tuple(layer.blob in held for layer in b.layers), "blob")
    held = {layer.diff_id for layer in a.layers}
    return Transfer(a, b, tuple(layer.diff_id in held for layer in b.layers), "content")


_SHELLS = re.compile(r"^(RUN )?(\|[0-9]+ (?:\S+=\S* )*)?(/bin/sh -c (#\(nop\) )?|/bin/bash -o pipefail -c )")


def step_text(created_by: str, width: int) -> str:
    """A layer's build step as `docker history` records it, on one line of at most ``width``
    characters: without the shell and build arguments BuildKit records (`RUN |1 A=b /bin/bash -o
    pipefail -c pip …` → `RUN pip …`), printable only (a registry's text too), cut in the middle,
    since a pip step's end names its layer's requirements file."""
    text = grammar.printable_part(" ".join(created_by.removesuffix("# buildkit").split()))
    text = _SHELLS.sub(lambda m: m.group(1) or "", text)
    if len(text) <= width:
        return text
    head = (width - 3) * 2 // 5
    return text[:head] + " … " + text[-(width - 3 - head) :]


# Instructions that change only the image config: their history entries make no layer.
_CONFIG_ONLY = {
    "ENV",
    "LABEL",
    "USER",
    "CMD",
    "ENTRYPOINT",
    "ARG",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "ONBUILD",
    "MAINTAINER",
}


def makes_layer(size: int, created_by: str) -> bool:
    """Whether a `docker history` entry is a layer. The engine's history does not say (the image
    config's `empty_layer` stays inside), and a step whose diff is empty (a RUN that changed
    nothing, a WORKDIR that exists) is a layer of 0 bytes: so by size, else by instruction."""
    if size > 0:
        return True
    text = re.sub(r"^/bin/sh -c #\(nop\)\s+", "", created_by.strip())  # the legacy builder's mark of its steps
    return text.split(" ", 1)[0].upper() not in _CONFIG_ONLY


def sized(diff_ids: list[str], history: list[tuple[int, str]]) -> tuple[LayerInfo, ...]:
    """An engine's layers with their unpacked sizes and the step that made each, `docker history`'s
    entries paired with the layers; when they do not pair up, the sizes stay unknown, not wrong."""
    steps = [(size, created_by) for size, created_by in history if makes_layer(size, created_by)]
    if len(steps) != len(diff_ids):
        return tuple(LayerInfo(d, None) for d in diff_ids)
    return tuple(LayerInfo(d, size, created_by=created_by) for d, (size, created_by) in zip(diff_ids, steps, strict=True))
