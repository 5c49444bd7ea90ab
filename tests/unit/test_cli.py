"""The CLI contract: exit 0/1/2, errors as one message with file:line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
M = ROOT / "tests" / "matrices"


def imagekit(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imagekit", *args], capture_output=True, text=True, cwd=cwd)


def test_bad_matrix_exits_2_with_file_line_and_no_traceback():
    out = imagekit("matrix", "validate", "--matrix", str(M / "wheel-cu121.yaml"))
    assert out.returncode == 2
    assert f"{M / 'wheel-cu121.yaml'}:5: variants.cu121.wheel: torch 2.6.0 publishes no cu121 wheel" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_validate_and_list_json(tmp_path):
    assert imagekit("matrix", "validate").returncode == 0
    out = imagekit("matrix", "list", "--format", "json", "--only", "*cu121*runtime")
    assert out.returncode == 0, out.stderr
    (entry,) = json.loads(out.stdout)
    assert entry["tag"] == "imagekit/pytorch:2.6.0-cu121-py3.11-runtime" and entry["wheel"] == "cu124"


def test_only_that_matches_nothing_exits_2():
    out = imagekit("matrix", "list", "--only", "*rocm*")
    assert out.returncode == 2 and "matches no image" in out.stderr and "Traceback" not in out.stderr


def test_bad_flag_value_exits_2():
    out = imagekit("test", "--gpus", "some")
    assert out.returncode == 2 and "expected all, none, auto or device=0,1" in out.stderr


def test_render_writes_every_selected_context(tmp_path):
    out = imagekit("render", "--out", str(tmp_path), "--only", "*cu118*")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "2.6.0-cu118-py3.11-devel",
        "2.6.0-cu118-py3.11-runtime",
        "2.6.0-cu118-py3.11-runtime-tracking",
    ]


def test_unreachable_engine_is_a_clear_error(tmp_path):
    # tests/unit/conftest.py points DOCKER_HOST at a socket that does not exist.
    local = ["--matrix", "matrix.yaml", "--matrix", "overlays/local-debian.yaml"]  # its lock is committed
    out = imagekit("test", *local, "--only", "*cu121*runtime", "--gpus", "none", "--reports", str(tmp_path))
    assert out.returncode == 2
    assert "cannot reach the Docker engine" in out.stderr and "TIP" in out.stderr and "Traceback" not in out.stderr


def test_build_without_a_lock_file_says_how_to_make_one(tmp_path):
    out = imagekit("build", "--lock", str(tmp_path / "nope.lock"))
    assert out.returncode == 2
    assert f"no lock file {tmp_path / 'nope.lock'}" in out.stderr and "run `imagekit lock`" in out.stderr
