"""The CLI contract: exit 0/1/2, errors as one message with file:line, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from imagekit.cli import main

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


def test_build_without_a_lock_file_locks_first_and_locked_refuses(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nope.lock"
    assert main(["build", "--lock", str(missing), "--locked"]) == 2
    err = capsys.readouterr().err
    assert f"no lock file {missing}, and --locked refuses to write one" in err and "run `imagekit lock`" in err
    monkeypatch.setenv("IMAGEKIT_LOCKED", "1")  # what CI sets once per job
    assert main(["build", "--lock", str(missing)]) == 2 and "--locked refuses" in capsys.readouterr().err
    monkeypatch.delenv("IMAGEKIT_LOCKED")
    # Without --locked it sets out to lock (here it needs the engine, which unit tests have none of).
    assert main(["build", "--lock", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"no lock file {missing}: locking 6 image(s) first" in err and "cannot reach the Docker engine" in err
    assert not missing.exists(), "nothing half-done is written"


def test_commands_refuse_options_that_do_not_concern_them(capsys):
    assert main(["build", "--dry-run"]) == 2, "a build asked for a dry run must not build for real"
    err = capsys.readouterr().err
    assert "`imagekit build` does not take --dry-run: it concerns `imagekit publish`" in err
    assert main(["test", "--jobs", "3"]) == 2
    assert "set IMAGEKIT_JOBS" in capsys.readouterr().err, "the tip names the way to hand it to several sessions"
    assert main(["render", "--gpus=all"]) == 2 and "it concerns `imagekit test`" in capsys.readouterr().err
    assert main(["build", "--frobnicate"]) == 2 and "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_an_environment_default_is_checked_like_its_flag_and_only_where_it_concerns_the_command(capsys, monkeypatch):
    monkeypatch.setenv("IMAGEKIT_GPUS", "some")
    assert main(["test"]) == 2
    assert "$IMAGEKIT_GPUS ('some'): expected all, none, auto or device=0,1" in capsys.readouterr().err
    assert main(["matrix", "validate"]) == 0, "validate takes no --gpus, so it ignores the variable"


def test_options_left_out_come_from_the_environment_and_given_ones_win():
    env = {**os.environ, "IMAGEKIT_MATRIX": "matrix.yaml overlays/local-debian.yaml", "IMAGEKIT_ONLY": "*-tracking"}
    run = subprocess.run(
        [sys.executable, "-m", "imagekit", "matrix", "list", "--format", "json"], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert run.returncode == 0, run.stderr
    assert [e["id"] for e in json.loads(run.stdout)] == ["2.6.0-cu121-py3.11-runtime-tracking"], (
        "the overlay's one variant, its extension only"
    )
    given = subprocess.run([sys.executable, "-m", "imagekit", "matrix", "list", "--format", "json", "--only", "*cu118*runtime"],
                           capture_output=True, text=True, cwd=ROOT, env={**env, "IMAGEKIT_MATRIX": "matrix.yaml"})  # fmt: skip
    assert [e["id"] for e in json.loads(given.stdout)] == ["2.6.0-cu118-py3.11-runtime"]


def test_github_cells_group_extensions_with_their_parent_and_carry_runner_labels(tmp_path):
    out = imagekit("matrix", "list", "--format", "github")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip().splitlines()) == 1, "one line, as $GITHUB_OUTPUT takes it"
    cells = {c["id"]: c for c in json.loads(out.stdout)["include"]}
    assert list(cells) == [
        "2.6.0-cu118-py3.11-runtime",
        "2.6.0-cu118-py3.11-devel",
        "2.6.0-cu121-py3.11-runtime",
        "2.6.0-cu121-py3.11-devel",
    ]
    runtime = cells["2.6.0-cu121-py3.11-runtime"]
    assert runtime["images"] == "2.6.0-cu121-py3.11-runtime 2.6.0-cu121-py3.11-runtime-tracking"
    assert runtime["runs_on"] == ["self-hosted", "linux", "gpu", "nvidia-525"]
    assert cells["2.6.0-cu118-py3.11-devel"]["runs_on"][-1] == "nvidia-450"
    assert all(c["changed"] and c["timeout_minutes"] == 120 for c in cells.values())

    # Against an earlier listing: only what differs is changed; --changed-only keeps just that.
    earlier = json.loads(out.stdout)
    earlier["include"][2]["inputs_id"] = "0" * 64
    (tmp_path / "base.json").write_text(json.dumps(earlier))
    changed = imagekit("matrix", "list", "--format", "github", "--changed-against", str(tmp_path / "base.json"), "--changed-only")
    assert [c["id"] for c in json.loads(changed.stdout)["include"]] == ["2.6.0-cu121-py3.11-runtime"]
    (tmp_path / "bad.json").write_text("{}")
    bad = imagekit("matrix", "list", "--format", "github", "--changed-against", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "is not a `imagekit matrix list --format github` listing" in bad.stderr


def test_a_template_change_changes_every_cell_that_renders_it(project_dir):
    before = json.loads(imagekit("matrix", "list", "--format", "github").stdout)["include"]
    shutil.copytree(ROOT / "templates", project_dir / "templates")
    extension = project_dir / "templates" / "Extension.Dockerfile.j2"
    extension.write_text(extension.read_text() + "# changed\n")
    overlay = project_dir / "o.yaml"
    overlay.write_text(f"templates: {project_dir / 'templates'}\n")
    after = json.loads(imagekit("matrix", "list", "--format", "github", "--matrix", "matrix.yaml", "--matrix", str(overlay)).stdout)[
        "include"
    ]
    changed = {a["id"] for a, b in zip(after, before, strict=True) if a["inputs_id"] != b["inputs_id"]}
    assert changed == {"2.6.0-cu118-py3.11-runtime", "2.6.0-cu121-py3.11-runtime"}, "only the cells holding an extension"
