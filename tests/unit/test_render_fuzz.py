"""Hostile matrix values cannot change what a rendered Dockerfile does.

Matrix files and overlays come from other teams' pull requests. For every field an attacker can
put text into, hypothesis draws values from hostile alphabets (line breaks of every kind,
backslashes, quotes, `$`, `${`, backticks, `;`, `&&`, `#`, heredoc openers, tabs, NUL and other
control characters, very long strings) and from plausible valid values, so both branches run.
For each drawn value exactly one of these holds:

* validation refuses it with ``ConfigurationError`` (``MatrixError`` is one) and nothing else:
  no other exception type, and no example runs past ``EXAMPLE_LIMIT_S`` (a hang); or
* every rendered Dockerfile, parsed by BuildKit's own parser (the ``dockerfile`` package wraps
  its Go code), has exactly the instructions the template alone gives that kind of image: the
  same instruction names in the same order, the same FROM values and one ARG of the same name;
  and every value the matrix put in it reads back intact, the way BuildKit (or bash, for RUN)
  reads it: the ARG default is the base image, LABELs are ``static_labels``, ENV holds each
  expected key exactly once with its value (an extension's env values through
  ``_dockerfile_quote``), WORKDIR and USER name the user, useradd gets the user name as one
  plain word, and the apt list handed to xargs holds each package as one line.

The reference ("the template alone") is the benign matrix ``_benign()`` rendered once: one image
per (flavor, extension or not).

Time bound: the whole file takes about 14 s of CPU (one core) while everything passes, with
``EXAMPLES`` per field below (2,000 examples); a failing field adds its shrinking, up to a few
minutes. Each example writes, loads and validates its matrix and renders every image anew; only
the templates' compiled code is shared (``_templates_compiled_once``). Most of what is left is
reading the YAML (imagekit.core.source). Derandomized: every run draws the same values, so a
failure reproduces.
"""

from __future__ import annotations

import copy
import shutil
import signal
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from imagekit.core.matrix import ImageSpec, Matrix, load_matrix
from imagekit.core.render import BASE_ARG, PARENT_ARG, Rendered, Renderer, _Sandbox, apt_file, expectations, static_labels
from imagekit.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = 100  # per field (150 until the templates compiled once per file); raise it locally for a deeper search
EXAMPLE_LIMIT_S = 10  # one validation and render taking longer than this counts as a hang

# ---------------------------------------------------------------------------------------------
# The matrix under attack
# ---------------------------------------------------------------------------------------------


def _benign() -> dict[str, Any]:
    """A valid matrix that reaches every template branch a value can land in: both flavors, a
    variant with its own driver, an extension with packages, apt and env (quotes, `\\`, `$`)."""
    return {
        "repository": "imagekit/pytorch",
        "registry": "registry.example.internal/ml",
        "source": "https://github.com/example/imagekit",
        "torch": {"version": "2.6.0", "torchaudio": "2.6.0"},
        "python": "3.11",
        "flavors": ["runtime", "devel"],
        "variants": {"cu121": {"cuda": "12.1.1", "wheel": "cu124", "driver": "535.104.05"}},
        "indexes": {"cu124": "https://pypi.org/simple"},
        "packages": ["numpy==2.2.6", "pytest==8.3.5"],
        "templates": "templates",
        "smoke": "smoke",
        "user": {"name": "imagekit", "uid": 1000},
        "extensions": {
            "tracking": {
                "parent": "runtime",
                "packages": ["tensorboardX==2.6.2.2"],
                "apt": ["git", "tini=0.19.0-1"],
                "env": {"TRACKING_LOGDIR": "/opt/runs", "QUOTED": 'say "hi" \\ $HOME'},
            }
        },
        "ci": {"driver_label": "nvidia-{branch}"},
    }


# libyaml where it is built in: the harness's own YAML should not be what takes the time.
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(_SafeDumper):  # type: ignore[misc, valid-type]
    """Every string double-quoted, so YAML writes any character as an escape and reads it back
    unchanged (plain and single-quoted scalars would fold line breaks)."""


_Dumper.add_representer(str, lambda dumper, s: dumper.represent_scalar("tag:yaml.org,2002:str", s, style='"'))


def _write(project: Path, data: dict[str, Any]) -> Path:
    text = yaml.dump(data, Dumper=_Dumper, width=-1, sort_keys=False)
    assert yaml.load(text, Loader=_SafeLoader) == data, "test harness: YAML did not round-trip the drawn value"
    path = project / "matrix.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def hang(signum: int, frame: object) -> None:
        raise TimeoutError(f"validating and rendering took over {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _render(project: Path, data: dict[str, Any]) -> tuple[Matrix, list[Rendered]] | None:
    """The matrix and every image rendered; None when validation refuses the matrix. Any other
    exception escapes and fails the test."""
    path = _write(project, data)
    with _time_limit(EXAMPLE_LIMIT_S):
        try:
            matrix = load_matrix([path])
            renderer = Renderer(matrix, None)
            return matrix, [renderer.render(image) for image in matrix.images]
        except ConfigurationError:
            return None


# ---------------------------------------------------------------------------------------------
# Reading a Dockerfile the way BuildKit does
# ---------------------------------------------------------------------------------------------


def _parse(text: str) -> tuple[Any, ...]:
    # The binding hands the text to Go as a C string: it would silently stop at a NUL.
    assert "\x00" not in text, "the rendered Dockerfile holds a NUL character"
    try:
        return dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        raise AssertionError(f"BuildKit's parser refuses the rendered Dockerfile: {exc}\n{text}") from None


def _read_word(word: str) -> tuple[str, bool]:
    """What BuildKit's shell lexer (frontend/dockerfile/shell/lex.go, ProcessWord) makes of an
    ARG, ENV, LABEL or WORKDIR word: quotes removed, backslash escapes applied. Variables are
    left as written (``$X`` reads as ``$X``); the flag says whether the word expands any.
    An unterminated quote raises AssertionError: BuildKit fails on it."""
    out: list[str] = []
    expands = False
    i, n = 0, len(word)

    def dollar(at: int) -> bool:
        return at + 1 < n and (word[at + 1] in "{_@*#?-$!" or word[at + 1].isalnum())

    while i < n:
        ch = word[i]
        if ch == "'":
            end = word.find("'", i + 1)
            assert end >= 0, f"unterminated single quote in {word!r}"
            out.append(word[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while True:
                assert i < n, f"unterminated double quote in {word!r}"
                ch = word[i]
                if ch == '"':
                    i += 1
                    break
                if ch == "$":
                    expands |= dollar(i)
                elif ch == "\\" and i + 1 < n and word[i + 1] in '"$\\':
                    i += 1
                    ch = word[i]
                elif ch == "\\" and i + 1 == n:
                    i += 1
                    continue
                out.append(ch)
                i += 1
        elif ch == "$":
            expands |= dollar(i)
            out.append(ch)
            i += 1
        elif ch == "\\":
            if i + 1 < n:
                out.append(word[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out), expands


def _literal(word: str) -> str:
    """A word BuildKit must read as written, with nothing to expand."""
    text, expands = _read_word(word)
    assert not expands, f"{word!r} expands a variable where a literal belongs"
    return text


# What bash gives a meaning to anywhere in a word (quoting, expansion, globbing, operators), and
# where a word starts (a comment, the home folder, an option to the command).
_SHELL_SPECIAL = set("|&;<>()$`\\\"' *?[]{}")
_SHELL_START = set("#~-")
# xargs (no -d) splits on blanks and unquotes quotes and backslashes.
_XARGS_SPECIAL = set("\"'\\")


def _unprintable(c: str) -> bool:
    return c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


def _plain_shell_word(word: str) -> bool:
    """bash reads ``word`` as one literal argument, not an option."""
    return bool(word) and word[0] not in _SHELL_START and not any(c in _SHELL_SPECIAL or _unprintable(c) for c in word)


def _plain_xargs_item(item: str) -> bool:
    """xargs hands ``item`` to apt-get as one literal argument, not an option."""
    return bool(item) and item[0] != "-" and not any(c in _XARGS_SPECIAL or _unprintable(c) for c in item)


def _pairs(commands: tuple[Any, ...], cmd: str) -> list[tuple[str, str]]:
    """(key, raw value) of every key=value in the ``cmd`` instructions, in order."""
    out: list[tuple[str, str]] = []
    for c in commands:
        if c.cmd == cmd:
            assert len(c.value) % 2 == 0, f"{c.original!r} is not key=value pairs"
            out += list(zip(c.value[::2], c.value[1::2], strict=True))
    return out


def _kind(image: ImageSpec) -> tuple[str, bool]:
    return image.flavor, image.extension is not None


@dataclass(frozen=True)
class Shape:
    """What the template alone decides about one kind of image."""

    instructions: tuple[str, ...]
    froms: tuple[tuple[str, ...], ...]
    env_keys: tuple[str, ...]  # base images: every key the template sets, in order


def _shape(commands: tuple[Any, ...]) -> Shape:
    return Shape(
        instructions=tuple(c.cmd for c in commands),
        froms=tuple(c.value for c in commands if c.cmd == "FROM"),
        env_keys=tuple(k for k, _ in _pairs(commands, "ENV")),
    )


def _check(rendered: Rendered, reference: Shape) -> None:
    """The rendered Dockerfile has the reference's instructions, and each value reads back intact."""
    image = rendered.image
    text = rendered.dockerfile
    commands = _parse(text)
    shape = _shape(commands)
    assert shape.instructions == reference.instructions, (
        f"{image.id!r}: the instructions changed\n  want {reference.instructions}\n  got  {shape.instructions}\n{text}"
    )
    assert shape.froms == reference.froms, f"{image.id!r}: FROM changed: {shape.froms} != {reference.froms}"

    arg = PARENT_ARG if image.extension else BASE_ARG
    args = [c.value for c in commands if c.cmd == "ARG"]
    assert args == [(f"{arg}={image.base_image}",)], f"ARG: {args} is not {arg}={image.base_image!r}"
    assert _literal(image.base_image) == image.base_image, f"ARG {arg}: BuildKit reads {image.base_image!r} differently"

    labels = _pairs(commands, "LABEL")
    want = static_labels(image)
    assert [k for k, _ in labels] == list(want), f"LABEL keys changed: {[k for k, _ in labels]}"
    for key, raw in labels:
        assert _literal(raw) == want[key], f"LABEL {key}: BuildKit reads {raw!r}, not {want[key]!r}"

    env = _pairs(commands, "ENV")
    keys = Counter(k for k, _ in env)
    if image.extension is None:
        assert tuple(k for k, _ in env) == reference.env_keys, f"ENV keys changed: {list(keys)}"
        for key, value in expectations(image).items():
            raw = dict(env)[key]
            assert _literal(raw) == value, f"ENV {key}: BuildKit reads {raw!r}, not {value!r}"
    else:
        wanted = [*image.extension.env, ("IMAGEKIT_IMAGE_ID", image.id)]
        assert sorted(keys) == sorted(k for k, _ in wanted), f"ENV keys: {dict(keys)} != {[k for k, _ in wanted]}"
        for key, value in wanted:
            assert keys[key] == 1, f"ENV {key} is set {keys[key]} times"
            raw = dict(env)[key]
            read = _read_word(raw)[0] if key != "IMAGEKIT_IMAGE_ID" else _literal(raw)
            assert read == value, f"ENV {key}: BuildKit reads {raw!r} as {read!r}, not {value!r}"

    workdirs = [c.value for c in commands if c.cmd == "WORKDIR"]
    assert workdirs == [(f"/home/{image.user}",)], f"WORKDIR: {workdirs}"
    assert _literal(workdirs[0][0]) == f"/home/{image.user}", f"WORKDIR: BuildKit reads {workdirs[0][0]!r} differently"
    users = [c.value for c in commands if c.cmd == "USER"]
    assert users[-1] == (str(image.uid),), f"USER: {users}"

    if image.extension is None:
        runs = [c.value[0] for c in commands if c.cmd == "RUN"]
        useradd = f"SOURCE_DATE_EPOCH=86400 useradd --create-home --uid {image.uid} --shell /bin/bash {image.user}"
        assert useradd in runs, f"useradd: none of the RUN instructions is {useradd!r}"
        assert _plain_shell_word(image.user), f"useradd: bash does not read the user name {image.user!r} as one plain word"
    elif image.extension.apt:
        listed = rendered.context[apt_file("extension")].decode()
        assert listed.split("\n")[:-1] == list(image.extension.apt), f"the apt list reads {listed!r}"
        assert all(_plain_xargs_item(p) for p in image.extension.apt), f"xargs splits, unquotes or passes options: {image.extension.apt}"


# ---------------------------------------------------------------------------------------------
# Hostile values
# ---------------------------------------------------------------------------------------------

INJECTIONS = [
    "\n", "\r", "\r\n", "\nRUN evil", "\nFROM scratch", "\\", "\\\n", '"', "'", "$", "${", "${X}",
    "$(id)", "`id`", ";", "&&", "#", " ", "\t", "\u2028", "\u2029", "\u0085", "\x00", "\x0b", "\x0c",
    "\x1b", "\x7f", "\ufeff", "<<EOF", "{{ x }}", "{", "}", "=", ":", "/",
    "@", "-", "..",
]  # fmt: skip
_ALPHABET = "".join(sorted(set("".join(INJECTIONS)) | set("abz09._-")))


# Line breaks first: a pattern checked with re.match(r"...$") lets a trailing "\n" through.
LINE_BREAKS = ["\n", "\r\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c"]
CONTROLS = ["\x00", "\x1b", "\x7f", "\x08", "\ufeff", "\u200b"]


def _spliced(value: str, times: int, injection: str, where: str) -> str:
    """``value`` repeated ``times`` times, with ``injection`` at its end, start or middle."""
    value *= times
    at = {"end": len(value), "start": 0, "middle": len(value) // 2}[where]
    return value[:at] + injection + value[at:]


def hostile(*plausible: str, extra: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """Plausible values; the same with one injection (a line break, or anything in INJECTIONS
    and ``extra``) at the end, start or middle; very long ones; near-valid variations (the
    plausible values' own characters spliced in, so that many are accepted and the rendering
    checks run); hostile soup; and arbitrary unicode. A failure shrinks towards a plausible
    value with one injection, which makes the hole plain."""
    valid = st.sampled_from(plausible)
    injection = st.one_of(st.sampled_from(LINE_BREAKS), st.sampled_from(CONTROLS), st.sampled_from(INJECTIONS + list(extra)))
    where = st.sampled_from(["end", "start", "middle"])
    times = st.one_of(st.integers(2, 3000), st.just(2000))
    own = st.text(alphabet="".join(sorted(set("".join(plausible)))), min_size=1, max_size=6)
    return st.one_of(
        valid,
        st.builds(_spliced, valid, st.just(1), injection, where),
        st.builds(_spliced, valid, times, st.sampled_from(["", "\n"]), st.just("end")),
        st.builds(_spliced, valid, st.just(1), own, where),
        st.lists(st.sampled_from(INJECTIONS + list(extra) + list(plausible)), min_size=1, max_size=5).map("".join),
        st.text(alphabet=_ALPHABET, max_size=16),
        st.text(max_size=8),
    )


def _uids() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([0, 1, 1000, 2**31 - 1, 2**31, -1]),
        st.integers(),
        st.integers(1, 2**31 - 1),
        st.booleans(),
        st.floats(allow_nan=False),  # NaN != NaN would trip the harness's YAML round-trip check
        hostile("1000", "0"),
    )


Mutate = Callable[[dict[str, Any], Any], None]


@dataclass(frozen=True)
class Field:
    name: str
    values: st.SearchStrategy[Any]
    put: Mutate


def _at(*path: str, beside: tuple[str, ...] | None = None) -> Mutate:
    """Put the value at ``path`` in the matrix; with ``beside``, as the last item of a list
    that starts with those valid items."""

    def put(m: dict[str, Any], value: Any) -> None:
        for key in path[:-1]:
            m = m[key]
        m[path[-1]] = value if beside is None else [*beside, value]

    return put


def _rename_variant(m: dict[str, Any], name: str) -> None:
    m["variants"] = {name: m["variants"]["cu121"]}


def _rename_extension(m: dict[str, Any], name: str) -> None:
    m["extensions"] = {name: m["extensions"]["tracking"]}


def _put_env_key(m: dict[str, Any], key: str) -> None:
    m["extensions"]["tracking"]["env"] = {"LOGDIR": "/opt/runs", key: "on"}


def _put_env_value(m: dict[str, Any], value: str) -> None:
    m["extensions"]["tracking"]["env"] = {"LOGDIR": "/opt/runs", "FUZZED": value}


EXT = ("extensions", "tracking")
FIELDS = [
    Field("user.name", hostile("imagekit", "ml-user", "user_1", "a"), _at("user", "name")),
    Field("user.uid", _uids(), _at("user", "uid")),
    Field("variants.<name>", hostile("cu121", "cu124", "a.b_c-1"), _rename_variant),
    Field(
        "variants.cu121.base_image",
        hostile(
            "imagekit-local/debian-python:bookworm-py3.11",
            "nvidia/cuda:12.1.1-base-ubuntu22.04",
            "registry.example:5000/ml/base@sha256:" + "0" * 64,
        ),
        _at("variants", "cu121", "base_image"),
    ),
    Field("variants.cu121.cuda", hostile("12.1.1", "12.4.1"), _at("variants", "cu121", "cuda")),
    Field("variants.cu121.driver", hostile("535.104.05", "550", "525.60.13"), _at("variants", "cu121", "driver")),
    Field("repository", hostile("imagekit/pytorch", "registry.example:5000/ml/pytorch", "localhost/a"), _at("repository")),
    Field("packages[]", hostile("pytest==8.3.5", "a[b]==1.0"), _at("packages", beside=("numpy==2.2.6",))),
    Field("extensions.<name>", hostile("tracking", "x.y-z_1"), _rename_extension),
    Field("extensions.tracking.env.<key>", hostile("TRACKING_LOGDIR", "_A1"), _put_env_key),
    Field("extensions.tracking.env.<value>", hostile("/opt/runs", 'say "hi" \\ $HOME', ""), _put_env_value),
    Field("extensions.tracking.apt[]", hostile("git", "tini=0.19.0-1"), _at(*EXT, "apt", beside=("git",))),
    Field(
        "extensions.tracking.packages[]",
        hostile("tensorboardX==2.6.2.2", "jupyterlab==4.3.5"),
        _at(*EXT, "packages", beside=("protobuf==5.29.3",)),
    ),
    Field("registry", hostile("registry.example.internal/ml", "127.0.0.1:5000/ml", "localhost"), _at("registry")),
    Field("source", hostile("https://github.com/example/imagekit", "git@example.com:a/b"), _at("source")),
    Field("indexes.<value>", hostile("https://pypi.org/simple", "${PIP_INDEX_URL:-https://pypi.org/simple}"), _at("indexes", "cu124")),
    Field(
        "ci.driver_label",
        hostile("nvidia-{branch}", "{branch}", "gpu-{branch}-x", extra=("{branch.x}", "{branch[9]}", "{0}", "{x}", "{branch!z}")),
        _at("ci", "driver_label"),
    ),
]

# Values headed for a double-quoted LABEL or ENV value: quotes, backslashes and `$`, one line.
_QUOTING = st.text(alphabet="\"'\\$`{}() ab_/", max_size=24)
QUOTING_FIELDS = [
    Field("extensions.tracking.env.<value>", _QUOTING, _put_env_value),
    Field("repository (LABEL title)", _QUOTING.map(lambda v: "example/" + v), _at("repository")),
    Field("extensions.<name> (LABEL io.imagekit.extension)", _QUOTING, _rename_extension),
]

# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _templates_compiled_once() -> Iterator[None]:
    """Each example builds a new Renderer, whose new Jinja environment would compile the same two
    templates again: 25 of the 30 ms an accepted example took. Compiling is a function of the
    template's source and the environment's settings alone, the same for every Renderer, so the
    compiled code is shared; each example still loads, validates and renders everything anew."""
    real = _Sandbox.compile
    compiled: dict[tuple[Any, ...], Any] = {}

    def compile_once(
        self: _Sandbox, source: Any, name: str | None = None, filename: str | None = None, raw: bool = False, defer_init: bool = False
    ) -> Any:
        key = (type(self), source, name, filename, raw, defer_init)
        if key not in compiled:
            compiled[key] = real(self, source, name, filename, raw, defer_init)
        return compiled[key]

    with pytest.MonkeyPatch.context() as m:
        m.setattr(_Sandbox, "compile", compile_once)
        yield


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder holding the product's own templates and smoke suite, on purpose: the values
    are fuzzed against what ships (tests/unit/test_render.py holds its golden files). Each example
    rewrites matrix.yaml."""
    root = tmp_path_factory.mktemp("fuzz-project")
    shutil.copytree(ROOT / "templates", root / "templates")
    shutil.copytree(ROOT / "smoke", root / "smoke", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture(scope="module")
def reference(project: Path) -> dict[tuple[str, bool], Shape]:
    """The template alone: the benign matrix's Dockerfiles, by kind of image."""
    result = _render(project, _benign())
    assert result is not None, "the benign matrix must be valid"
    _, rendered = result
    return {_kind(r.image): _shape(_parse(r.dockerfile)) for r in rendered}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else f"{text[:150]} ... {text[-100:]} ({len(value)} characters)"


def _refused_or_intact(project: Path, reference: dict[tuple[str, bool], Shape], field: Field) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        report_multiple_bugs=False,  # shrink one failure per field, not every distinct one
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    )
    @given(value=field.values)
    def refused_or_intact(value: Any) -> None:
        note(f"field {field.name}: {_short(value)}")
        data = copy.deepcopy(_benign())
        field.put(data, value)
        result = _render(project, data)
        if result is None:
            return
        _, rendered = result
        assert sorted(_kind(r.image) for r in rendered) == sorted(reference), "the set of images changed"
        for r in rendered:
            _check(r, reference[_kind(r.image)])

    refused_or_intact()


def test_the_checks_accept_the_benign_matrix(project: Path, reference: dict[tuple[str, bool], Shape]) -> None:
    """The oracle itself: the benign matrix's Dockerfiles pass every check (three images)."""
    result = _render(project, _benign())
    assert result is not None
    _, rendered = result
    assert len(rendered) == 3
    for r in rendered:
        _check(r, reference[_kind(r.image)])


# Very long drawn values would otherwise turn a falsifying example into a warning-as-error.
_LONG_REPRS = pytest.mark.filterwarnings("ignore:Generating overly large repr")


@_LONG_REPRS
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_hostile_value_is_refused_or_rendered_intact(project: Path, reference: dict[tuple[str, bool], Shape], field: Field) -> None:
    _refused_or_intact(project, reference, field)


@_LONG_REPRS
@pytest.mark.parametrize("field", QUOTING_FIELDS, ids=lambda f: f.name)
def test_quoted_label_and_env_values_keep_their_instructions(project: Path, reference: dict[tuple[str, bool], Shape], field: Field) -> None:
    """Accepted values with quotes, backslashes and `$` in a LABEL or ENV: the same instructions,
    ENV keys once each, and the value as BuildKit reads it (``_dockerfile_quote`` for env)."""
    _refused_or_intact(project, reference, field)
