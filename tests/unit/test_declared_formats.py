"""The three formats imagekit reads besides matrices and locks, each a declared, validated type:
the compatibility facts (imagekit/data/facts.yaml), the package manifest an image carries
(/opt/imagekit/manifest.json) and an earlier GitHub listing (`--changed-against`). A malformed
one is refused with a message naming the file, the field (and, for YAML, the line) and a tip;
never a traceback."""

from __future__ import annotations

import importlib.util
import io
import json
from contextlib import redirect_stdout
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from imagekit.core import cells, facts
from imagekit.core.manifest import MANIFEST_PATH, PackageManifest, parse
from imagekit.core.matrix import load_matrix
from imagekit.errors import ConfigurationError, ImagekitError, MatrixError
from imagekit.stages.inspect import read_manifest

ROOT = Path(__file__).resolve().parent.parent.parent
M = ROOT / "tests" / "matrices"
SHIPPED_FACTS = Path(str(resources.files("imagekit").joinpath("data/facts.yaml")))


def line_of(text: str, needle: str) -> int:
    """The 1-based line of ``text`` that holds ``needle`` (once)."""
    (line,) = [n for n, ln in enumerate(text.splitlines(), 1) if needle in ln]
    return line


# ==================================================================================================
# Facts: imagekit/data/facts.yaml


def test_the_shipped_facts_are_read_through_their_declared_shape():
    read = facts.read(SHIPPED_FACTS)
    assert read == facts.load()
    assert read.torch["2.6.0"].wheels == ("cu118", "cu124", "cu126") and read.torch["2.6.0"].pypi_wheel == "cu124"
    assert read.driver_needed("12.1.1") == "525.60.13" and read.driver_needed("13.0.0") is None
    assert read.flavor_tag == {"runtime": "base", "devel": "devel"}
    assert not hasattr(read, "driver_shipped")  # the file records it with its source; nothing reads it


# (what the patched file says instead, the line to look for it on, the field, what the message says)
FACTS_CASES = [
    pytest.param(
        ('"11.8": {shipped: "520.61.05", minimum: "450.80.02"}', '"11.8": {shipped: "520.61.05", minimum: 450}'),
        '"11.8":',
        "drivers.11.8.minimum",
        "must be a string in quotes",
        id="number-not-string",
    ),
    pytest.param(
        ('    pypi_wheel: cu124\n  "2.5.1"', '    pypi_whel: cu124\n  "2.5.1"'),
        "pypi_whel",
        "torch.2.6.0.pypi_whel",
        "did you mean 'pypi_wheel'",
        id="typo",
    ),
    pytest.param(
        ("wheels: [cu118, cu124, cu126]", "wheels: [cu118, cu124, cu999]"),
        "cu999",
        "torch.2.6.0.wheels.2",
        "no CUDA version in wheel_cuda",
        id="unknown-channel",
    ),
    pytest.param(
        ("{runtime: base, devel: devel}", "{runtime: base}"),
        "flavor_tag:",
        "nvidia_cuda.flavor_tag.devel",
        "required field is missing",
        id="missing-flavor",
    ),
    pytest.param(
        ('supported: ["11.8.0"', 'supported: ["11.8"'),
        "supported:",
        "nvidia_cuda.supported.0",
        "is not a full CUDA version",
        id="bad-cuda-tag",
    ),
    pytest.param(
        ('replaced: {"12.1.0": "12.1.1"}', 'replaced: {"12.1.0": "12.1.2"}'),
        "replaced:",
        "nvidia_cuda.replaced.12.1.0",
        "not among nvidia_cuda.supported",
        id="replaced-by-unsupported",
    ),
    pytest.param(("torch:\n", "torch: [\n"), None, None, "not valid YAML", id="not-yaml"),
]


def patched_facts(tmp_path: Path, change: tuple[str, str]) -> tuple[Path, str]:
    text = SHIPPED_FACTS.read_text()
    assert text.count(change[0]) == 1, change[0]
    path = tmp_path / "facts.yaml"
    path.write_text(text.replace(change[0], change[1]))
    return path, path.read_text()


@pytest.mark.parametrize(("change", "on_line", "field", "says"), FACTS_CASES)
def test_a_malformed_facts_file_is_refused_at_file_line_and_field(tmp_path, change, on_line, field, says):
    path, text = patched_facts(tmp_path, change)
    with pytest.raises(MatrixError) as info:
        facts.read(path)
    error = info.value
    assert isinstance(error, ConfigurationError) and error.return_code == 2
    assert error.message.startswith(f"the facts file {path} has ")
    at = f"{path}:{line_of(text, on_line)}: {field}" if on_line else f"{path}:"  # YAML errors: where the parser noticed
    assert [p for p in error.problems if p.startswith(at) and says in p], error.problems
    assert error.tip and "facts.yaml" in error.tip


def test_a_patched_facts_file_reaches_the_cli_as_exit_2_not_a_traceback(tmp_path, monkeypatch, imagekit):
    path, text = patched_facts(tmp_path, FACTS_CASES[0].values[0])
    monkeypatch.setattr(facts, "load", lambda: facts.read(path))
    ran = imagekit("matrix", "validate", "--matrix", str(M / "good.yaml"))
    rc, err = ran.returncode, ran.stderr
    assert rc == 2 and "Traceback" not in err
    line = line_of(text, '"11.8":')
    assert f"{path}:{line}: drivers.11.8.minimum" in err and "TIP" in err


# ==================================================================================================
# The package manifest: /opt/imagekit/manifest.json, as imagekit/data/write_manifest.py prints it


def written_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """What write_manifest.py prints for a venv of one package and a dpkg status of two."""
    spec = importlib.util.spec_from_file_location("write_manifest", resources.files("imagekit").joinpath("data/write_manifest.py"))
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "numpy").mkdir(parents=True)
    (site / "numpy" / "__init__.py").write_text("x = 1\n")
    info = site / "numpy-2.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 2.2.3\n")
    (info / "RECORD").write_text("numpy/__init__.py,,\nnumpy-2.2.3.dist-info/METADATA,,\n")
    status = tmp_path / "status"
    status.write_text(
        "Package: bash\nStatus: install ok installed\nArchitecture: all\nVersion: 5.2.15-2+b7\nInstalled-Size: 7000\n\n"
        "Package: libcublas-12-1\nStatus: install ok installed\nArchitecture: all\nVersion: 12.1.3.1-1\nInstalled-Size: 10\n"
    )
    plan = tmp_path / "layers.json"  # what render sends in the build context
    plan.write_text('[{"name": "numpy", "packages": ["numpy"]}, {"name": "rest", "packages": ["pytest"]}]\n')
    monkeypatch.setattr(script, "VENV", tmp_path / "venv")
    monkeypatch.setattr(script, "DPKG_STATUS", status)
    monkeypatch.setattr(script, "LAYERS", plan)
    monkeypatch.setenv("IMAGEKIT_IMAGE_ID", "2.6.0-cu121-py3.11-runtime")
    monkeypatch.setenv("CUDA_VERSION", "12.1.1")
    out = io.StringIO()
    with redirect_stdout(out):
        assert script.main() == 0
    return out.getvalue().encode()


def test_a_manifest_as_the_image_writes_it_is_read(tmp_path, monkeypatch):
    m = parse(written_manifest(tmp_path, monkeypatch), "repo:tag", 5_000)
    assert (m.ref, m.image_id, m.size, m.cuda_toolkit, m.torch_cuda) == ("repo:tag", "2.6.0-cu121-py3.11-runtime", 5_000, "12.1.1", None)
    assert m.cuda_libraries == {"libcublas-12-1": "12.1.3.1-1"}
    assert [(p.kind, p.name, p.version) for p in m.packages.values()] == [
        ("pip", "numpy", "2.2.3"),
        ("apt", "bash", "5.2.15-2+b7"),
        ("apt", "libcublas-12-1", "12.1.3.1-1"),
    ]
    assert m.packages["pip", "numpy"].size == 6 + len("Metadata-Version: 2.1\nName: numpy\nVersion: 2.2.3\n")
    assert m.packages["apt", "bash"].size == 7000 * 1024
    # The layer plan, each layer with its installed packages' bytes (pytest is in the plan, not in this venv).
    assert m.layers == (("numpy", ("numpy",), m.packages["pip", "numpy"].size), ("rest", ("pytest",), 0))


class StubEngine:
    """The three engine calls read_manifest makes, answered from memory."""

    def __init__(self, raw: bytes | None) -> None:
        self.raw = raw

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        return {"Id": "sha256:" + "0" * 64}

    def read_file(self, ref: str, path: str) -> bytes | None:
        assert path == MANIFEST_PATH
        return self.raw

    def size(self, ref: str) -> int:
        return 123


def test_read_manifest_reads_the_bytes_through_the_engine_and_parses_them_in_the_core(tmp_path, monkeypatch):
    raw = written_manifest(tmp_path, monkeypatch)
    m = read_manifest(StubEngine(raw), "repo:tag")  # type: ignore[arg-type]
    assert isinstance(m, PackageManifest) and m == parse(raw, "repo:tag", 123)
    with pytest.raises(ImagekitError, match="has no package manifest"):
        read_manifest(StubEngine(None), "repo:tag")  # type: ignore[arg-type]


def _without(d: dict[str, Any], *path: str) -> None:
    for key in path[:-1]:
        d = d[key]
    del d[path[-1]]


# (how the manifest is broken, the field the message must name, what it says)
MANIFEST_CASES = [
    pytest.param(lambda d: d["pip"]["numpy"].update(size=-1), "pip.numpy.size", "greater than or equal to 0", id="negative-size"),
    pytest.param(lambda d: d["apt"]["bash"].update(size="7MB"), "apt.bash.size", "valid integer", id="size-not-a-number"),
    pytest.param(lambda d: d["pip"]["numpy"].update(version=2.2), "pip.numpy.version", "valid string", id="version-not-a-string"),
    pytest.param(lambda d: _without(d, "cuda", "torch"), "cuda.torch", "required field is missing", id="missing-field"),
    pytest.param(lambda d: d.update(layer=3), "layer", "unknown key", id="unknown-key"),
    pytest.param(lambda d: d.update(layers=3), "layers", "valid list", id="layers-not-a-list"),
    pytest.param(lambda d: d["cuda"].update(libraries=["x"]), "cuda.libraries", "valid dictionary", id="libraries-not-a-map"),
    pytest.param(lambda d: d.update(schema=2), "schema", "2, expected 1", id="other-schema"),
    pytest.param(lambda d: d.update(schema=True), "schema", "true, expected 1", id="schema-true"),
    pytest.param(lambda d: _without(d, "schema"), "schema", "required field is missing", id="no-schema"),
]


@pytest.mark.parametrize(("breaks", "field", "says"), MANIFEST_CASES)
def test_a_malformed_manifest_names_the_file_and_the_field(tmp_path, monkeypatch, breaks, field, says):
    data = json.loads(written_manifest(tmp_path, monkeypatch))
    breaks(data)
    with pytest.raises(ImagekitError) as info:
        parse(json.dumps(data).encode(), "repo:tag", 1)
    error = info.value
    assert error.message.startswith(f"repo:tag: {MANIFEST_PATH} is not a package manifest imagekit can read")
    assert f"({field}: " in error.message and says in error.message, error.message
    assert error.tip == "rebuild it with `imagekit build`"


@pytest.mark.parametrize(
    "raw", [b"", b"\xff\xfe", b"[1]", b"[" * 100_000, b'{"schema": 1}'], ids=["empty", "not-utf8", "a-list", "deep", "bare"]
)
def test_bytes_that_are_no_manifest_are_refused_without_a_traceback(raw):
    with pytest.raises(ImagekitError) as info:
        parse(raw, "repo:tag", 1)
    assert MANIFEST_PATH in info.value.message and info.value.tip == "rebuild it with `imagekit build`"


def test_a_manifest_broken_throughout_lists_some_problems_not_all():
    data = {"schema": 1, "pip": {f"p{i}": {"version": "1", "size": -1} for i in range(50)}}
    with pytest.raises(ImagekitError) as info:
        parse(json.dumps(data).encode(), "repo:tag", 1)
    assert "… and" in info.value.message and len(info.value.message.splitlines()) <= 22


# ==================================================================================================
# An earlier GitHub listing (`imagekit matrix list --format github --changed-against FILE`)


@pytest.fixture(scope="module")
def listing() -> dict[str, Any]:
    """The project's own cells, as `--format github` lists them (unlocked: the listing does not need a lock)."""
    matrix = load_matrix([M / "product-like.yaml"])
    return {"include": cells.cells(matrix, None, matrix.images)}


def test_cells_carry_exactly_the_declared_keys(listing):
    assert cells.KEYS == ("id", "images", "runs_on", "timeout_minutes", "inputs_id", "changed", "cache_registry")
    assert all(tuple(c) == cells.KEYS for c in listing["include"])


def test_an_earlier_listing_is_read_to_cell_ids_and_inputs_ids(tmp_path, listing):
    path = tmp_path / "base.json"
    path.write_text(json.dumps(listing, separators=(",", ":")))
    assert cells.read_previous(path) == {c["id"]: c["inputs_id"] for c in listing["include"]}


def test_a_listing_from_another_imagekit_version_with_other_keys_is_still_read(tmp_path, listing):
    # The base commit's own imagekit writes it (.github/scripts/plan-cells): keys it has that this
    # version lacks, or lacks that this version added, must not stop a pull request from planning.
    cell = listing["include"][0]
    path = tmp_path / "base.json"
    path.write_text(json.dumps({"include": [{"id": cell["id"], "inputs_id": cell["inputs_id"], "container": "x"}]}))
    assert cells.read_previous(path) == {cell["id"]: cell["inputs_id"]}


# (how the listing is broken, the field the message must name, what it says)
LISTING_CASES = [
    pytest.param(lambda d: d["include"][1].update(inputs_id="0" * 63), "include.1.inputs_id", "is not an inputs id", id="short-inputs-id"),
    pytest.param(lambda d: d["include"][0].update(inputs_id=None), "include.0.inputs_id", "valid string", id="inputs-id-null"),
    pytest.param(lambda d: d["include"][2].pop("id"), "include.2.id", "required field is missing", id="no-id"),
    pytest.param(lambda d: d["include"][0].update(id="a b\n::error::x"), "include.0.id", "is not an image id", id="id-not-a-tag"),
    pytest.param(lambda d: d.update(exclude=[]), "exclude", "unknown key", id="unknown-top-level-key"),
    pytest.param(lambda d: d.update(include={"id": "x"}), "include", "valid list", id="include-not-a-list"),
    pytest.param(lambda d: d["include"].append(dict(d["include"][0])), "include.4.id", "again (first as include.0)", id="duplicate-cell"),
]


@pytest.mark.parametrize(("breaks", "field", "says"), LISTING_CASES)
def test_a_malformed_listing_names_the_file_and_the_field(tmp_path, listing, breaks, field, says):
    data = json.loads(json.dumps(listing))
    breaks(data)
    path = tmp_path / "base.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError) as info:
        cells.read_previous(path)
    error = info.value
    assert error.return_code == 2
    assert error.message.startswith(f"{path} is not a `imagekit matrix list --format github` listing")
    assert f"({field}: " in error.message and says in error.message, error.message
    assert "\n" not in error.message  # one problem, one line: no forged log line either
    assert error.tip and "--changed-against" in error.tip


@pytest.mark.parametrize(
    "content", [b"", b"\xff{}", b"[" * 100_000, b"{" + b" " * (4 * 2**20) + b"}"], ids=["empty", "not-utf8", "deep", "over-4-MiB"]
)
def test_a_file_that_is_no_listing_is_refused(tmp_path, content):
    path = tmp_path / "base.json"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError) as info:
        cells.read_previous(path)
    assert info.value.message.startswith(f"{path} is not a `imagekit matrix list --format github` listing (")


def test_a_malformed_listing_reaches_the_cli_as_exit_2_naming_file_and_field(tmp_path, listing, imagekit):
    data = json.loads(json.dumps(listing))
    data["include"][0]["inputs_id"] = 5
    path = tmp_path / "base.json"
    path.write_text(json.dumps(data))
    ran = imagekit("matrix", "list", "--format", "github", "--matrix", str(M / "product-like.yaml"), "--changed-against", str(path))
    rc, err = ran.returncode, ran.stderr
    assert rc == 2 and "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("ERROR")] == [
        f"ERROR {path} is not a `imagekit matrix list --format github` listing (include.0.inputs_id: Input should be a valid string)"
    ]
