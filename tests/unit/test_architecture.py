"""The layering the README's "Architecture" section promises, checked rather than hoped for."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "imagekit"
SIDE_EFFECTS = ("docker", "requests", "urllib3", "uv", "subprocess")


@pytest.mark.subprocess  # a fresh interpreter is the only one whose sys.modules shows what the core imports
def test_the_core_imports_nothing_that_talks_to_engines_networks_or_processes():
    # A fresh interpreter: this one has loaded the adapters already, for other tests.
    code = (
        "import json, sys, pkgutil, importlib, imagekit.core\n"
        "for m in pkgutil.iter_modules(imagekit.core.__path__): importlib.import_module('imagekit.core.' + m.name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "imagekit.core.render" in loaded and "imagekit.core.lock" in loaded
    assert [m for m in loaded if m.split(".")[0] in SIDE_EFFECTS] == []
    assert [m for m in loaded if m.startswith("imagekit.") and m.split(".")[1] in ("adapters", "stages", "cli", "reports")] == []


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


@pytest.mark.parametrize("layer", ["core", "adapters", "stages"])
def test_lower_layers_never_import_higher_ones(layer):
    higher = {"core": ("adapters", "stages", "cli", "reports"), "adapters": ("stages", "cli"), "stages": ("cli",)}[layer]
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imports(path) if m.startswith("imagekit.") and m.split(".")[1] in higher)
        for path in (PACKAGE / layer).glob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_adapters_talk_to_engines_networks_and_processes():
    """Stages reach the outside world through the adapters they are handed (stages/ports.py);
    nothing but an adapter imports the libraries that do it."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imports(path) if m.split(".")[0] in SIDE_EFFECTS)
        for path in PACKAGE.rglob("*.py")
        if "adapters" not in path.relative_to(PACKAGE).parts
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_stages_make_no_adapter_of_their_own():
    """A stage is handed its engine, builder runner, registry client and host tools; it never builds
    one (a fake could then not stand in for it)."""
    made = {"Engine", "Registry", "BuildProcesses", "find_builder", "run_probe", "run_logged", "collect", "auth_config"}
    offenders = []
    for path in (PACKAGE / "stages").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr if isinstance(node.func, ast.Attribute) else ""
                if name in made:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}()")
    assert offenders == []


# The names of what lies under reports/ (imagekit/reports.py, ReportsDir's docstring).
REPORT_NAMES = {"junit", "logs", "artifacts", "manifests", "summary.md", "published.json", "junit.xml", "build.xml"}


def _literal(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with each field as {} (f"build-{image}.log" → "build-{}.log")."""
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def test_no_path_under_reports_is_built_outside_reports_dir():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "reports.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            text = _literal(node)
            if text is not None and (text in REPORT_NAMES or (text.startswith(("verify-", "build-", "test-", "size-")) and "{}" in text)):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text!r}")
    assert offenders == []
