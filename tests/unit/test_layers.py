"""The layer plan: the locked set split into ordered groups, each package in exactly one, as the
rules say; and the rules held to their grammar where the matrix sets them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imagekit.core import facts
from imagekit.core.layers import REST, Rule, makes_layer, parse, plan, sized
from imagekit.core.matrix import load_matrix
from imagekit.errors import MatrixError

ROOT = Path(__file__).resolve().parents[2]
# A real set: the committed lock's, as uv resolved it against PyPI (torch 2.6.0+cu124, numpy, pytest).
LOCKED = yaml.safe_load((ROOT / "overlays" / "local-debian.lock").read_text())["images"]
RUNTIME = LOCKED["2.6.0-cu121-py3.11-runtime"]["requirements"]
PRODUCT_RULES = (
    Rule("cuda", ("nvidia-*",)),
    Rule("torch", ("torch", "torchaudio", "triton"), with_dependencies=True),
    Rule("numpy", ("numpy",)),
)


def test_the_product_plan_puts_each_package_of_the_set_in_exactly_one_layer_in_order():
    layers = plan(RUNTIME, PRODUCT_RULES)
    assert [layer.name for layer in layers] == ["cuda", "torch", "numpy", REST]
    by_layer = {layer.name: layer.packages for layer in layers}
    assert by_layer["cuda"] == [p for p in by_layer["cuda"] if p.startswith("nvidia-")] and len(by_layer["cuda"]) == 13
    # torch with what it and torchaudio need that the CUDA layer does not hold, found through uv's `# via`.
    assert sorted(by_layer["torch"]) == [
        "filelock", "fsspec", "jinja2", "markupsafe", "mpmath", "networkx", "sympy", "torch", "torchaudio", "triton", "typing-extensions",
    ]  # fmt: skip
    assert by_layer["numpy"] == ["numpy"]
    assert by_layer[REST] == ["iniconfig", "packaging", "pluggy", "pytest"], "pytest and what it alone needs"
    everything = [p.name for p in parse(RUNTIME)]
    assert sorted(p for layer in layers for p in layer.packages) == sorted(everything), "the whole set, each package once"
    # Each layer's file is the lock's own lines for its packages: pins and every hash, no comment
    # (a `# via` that another package's arrival changes must not rebuild the layer).
    assert "".join(layer.text for layer in layers).count("--hash=sha256:") == RUNTIME.count("--hash=sha256:")
    assert sorted(p.name for layer in layers for p in parse(layer.text)) == sorted(everything)
    assert all("#" not in line.split("--hash=sha256:")[0] for layer in layers for line in layer.text.splitlines())


def test_a_new_package_that_needs_a_torch_dependency_leaves_the_torch_layer_as_it_was():
    # Add pydantic, which needs typing-extensions too: uv's `# via` of typing-extensions changes, its pin does not.
    block = RUNTIME[RUNTIME.index("typing-extensions==") :]
    via = block[block.index("    # via") :].split("\n", 1)[0]
    widened = RUNTIME.replace(block, block.replace(via, "    # via\n    #   pydantic\n    #   torch", 1))
    before = {layer.name: layer.text for layer in plan(RUNTIME, PRODUCT_RULES)}
    after = {layer.name: layer.text for layer in plan(widened, PRODUCT_RULES)}
    assert widened != RUNTIME and after["torch"] == before["torch"]


def test_the_default_plan_and_what_no_rule_takes():
    layers = plan(RUNTIME, facts.load().layers)
    assert [layer.name for layer in layers] == ["cuda", "torch", REST]
    assert plan(RUNTIME, ())[0].name == REST and len(plan(RUNTIME, ())) == 1, "no rules: one layer, as before the plan"


def test_an_earlier_layer_keeps_what_it_took_and_empty_layers_are_left_out():
    rules = (Rule("tools", ("pytest", "packaging")), Rule("torch", ("torch",), with_dependencies=True), Rule("none", ("no-such-*",)))
    layers = {layer.name: layer.packages for layer in plan(RUNTIME, rules)}
    assert layers["tools"] == ["packaging", "pytest"] and "none" not in layers
    assert "packaging" not in layers["torch"] and "nvidia-cudnn-cu12" in layers["torch"], "its dependencies, the CUDA wheels too"
    assert layers[REST] == ["iniconfig", "numpy", "pluggy", "torchaudio"], "torchaudio needs torch; torch does not need it"


def test_an_extensions_set_reads_its_constraint_annotations_as_no_dependency():
    extension = LOCKED["2.6.0-cu121-py3.11-runtime-tracking"]["requirements"]
    needs = {p.name: p.via for p in parse(extension)}
    assert needs["protobuf"] == {"tensorboardx"} and needs["numpy"] == {"tensorboardx"}, "-r and -c are not packages"
    assert needs["tensorboardx"] == frozenset()


def test_pins_with_environment_markers_stay_packages_of_their_own():
    text = (
        "colorama==0.4.6 ; sys_platform == 'win32' \\\n    --hash=sha256:" + "a" * 64 + "\n    # via pytest\n"
        "pytest==8.3.5 \\\n    --hash=sha256:" + "b" * 64 + "\n"
    )
    assert [(p.name, p.version, p.via) for p in parse(text)] == [("colorama", "0.4.6", {"pytest"}), ("pytest", "8.3.5", frozenset())]


def _problems(project_dir: Path, layers: str) -> str:
    matrix = project_dir / "m.yaml"
    product = (ROOT / "tests" / "matrices" / "product-like.yaml").read_text().replace("../../", "../../../")
    matrix.write_text(product + layers)
    with pytest.raises(MatrixError) as info:
        load_matrix([matrix])
    return "\n".join(info.value.problems)


@pytest.mark.parametrize(
    ("layers", "line", "expected"),
    [
        (
            "layers:\n  - {name: cuda, packages: [nvidia-*]}\n  - {name: cuda, packages: [torch]}\n",
            34,
            "layers.1.name: 'cuda' names two layers",
        ),
        ("layers:\n  - {name: rest, packages: [numpy]}\n", 33, "layers.0.name: 'rest' is the layer of what no rule takes"),
        ("layers:\n  - {name: extension, packages: [numpy]}\n", 33, "layers.0.name: 'extension' is the layer of an extension's own"),
        ("layers:\n  - {name: Big, packages: [numpy]}\n", 33, "layers.0.name: 'Big' is not a layer name"),
        (
            "layers:\n  - {name: x, packages: ['numpy;rm -rf']}\n",
            33,
            "layers.0.packages.0: 'numpy;rm -rf' is not a glob over lowercase pip",
        ),
        ("layers:\n  - {name: x, packages: []}\n", 33, "layers.0.packages: List should have at least 1 item"),
        (
            "layers:\n  - {name: x, packages: [numpy], with_dependency: true}\n",
            33,
            "layers.0.with_dependency: unknown key (did you mean 'with_dependencies'?)",
        ),
        (
            "layers:\n" + "".join(f"  - {{name: l{i}, packages: [p{i}]}}\n" for i in range(17)),
            32,
            "layers: List should have at most 16 items",
        ),
        ("publish: {compression: lz4}\n", 32, "publish.compression: Input should be 'gzip' or 'zstd'"),
    ],
)
def test_rules_and_compression_are_held_to_their_grammar(project_dir, layers, line, expected):
    problems = _problems(project_dir, layers)
    assert f"m.yaml:{line}: {expected}" in problems, problems


def test_history_pairs_with_layers_also_where_a_step_made_an_empty_layer():
    # docker history of an image built here (classic store, BuildKit), oldest first: the base's
    # import, then the steps; a RUN that changed nothing and a WORKDIR that existed are layers of 0 bytes.
    history = [
        (265_000_000, ""),
        (0, "SHELL [/bin/bash -o pipefail -c]"),
        (0, "ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8"),
        (0, "RUN |1 IMAGEKIT_BASE=sha256:cf89 /bin/bash -o pipefail -c if [ -s /run/imagekit/apt-system.txt ]; then …; fi # buildkit"),
        (330_000, "RUN /bin/bash -o pipefail -c SOURCE_DATE_EPOCH=86400 useradd … # buildkit"),
        (2_800_000_000, "RUN /bin/bash -o pipefail -c … -r /run/imagekit/requirements-cuda.txt # buildkit"),
        (0, "ENV PATH=/opt/venv/bin:$PATH"),
        (0, "LABEL org.opencontainers.image.title=pytorch"),
        (0, "USER 1000"),
        (0, "WORKDIR /home/imagekit"),
        (0, 'CMD ["python"]'),
    ]
    layers = sized(["sha256:base", "sha256:apt", "sha256:user", "sha256:cuda", "sha256:workdir"], history)
    assert [(layer.diff_id, layer.size) for layer in layers] == [
        ("sha256:base", 265_000_000), ("sha256:apt", 0), ("sha256:user", 330_000), ("sha256:cuda", 2_800_000_000), ("sha256:workdir", 0),
    ]  # fmt: skip
    assert "requirements-cuda.txt" in layers[3].created_by
    assert not makes_layer(0, "/bin/sh -c #(nop)  ENV A=b") and makes_layer(0, "/bin/sh -c #(nop) ADD file:abc in / ")
    assert [layer.size for layer in sized(["sha256:only"], history)] == [None], "counts that do not pair: unknown, not wrong"
