"""The CLI contract: exit 0/1/2, errors as one message with file:line, never a traceback. Each
command runs in this process (the `imagekit` fixture, tests/unit/conftest.py): an exception that
escaped `main` would fail the test with its traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from imagekit.core.lock import Lock, Locked
from imagekit.core.matrix import load_matrix

ROOT = Path(__file__).resolve().parent.parent.parent
M = ROOT / "tests" / "matrices"
# The product's matrix and local overlay as of writing (tests/matrices/product-like*.yaml).
PRODUCT = ("--matrix", str(M / "product-like.yaml"))
LOCAL = (*PRODUCT, "--matrix", str(M / "product-like-local.yaml"))


def test_bad_matrix_exits_2_with_file_line_and_no_traceback(imagekit):
    out = imagekit("matrix", "validate", "--matrix", str(M / "wheel-cu121.yaml"))
    assert out.returncode == 2
    assert f"{M / 'wheel-cu121.yaml'}:5: variants.cu121.wheel: torch 2.6.0 publishes no cu121 wheel" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_validate_and_list_json(imagekit):
    assert imagekit("matrix", "validate", *PRODUCT).returncode == 0
    out = imagekit("matrix", "list", *PRODUCT, "--format", "json", "--only", "*cu121*runtime")
    assert out.returncode == 0, out.stderr
    (entry,) = json.loads(out.stdout)
    assert entry["tag"] == "imagekit/pytorch:2.6.0-cu121-py3.11-runtime" and entry["wheel"] == "cu124"


def test_the_default_matrix_is_matrix_yaml_in_the_working_folder(imagekit, tmp_path):
    shutil.copy(M / "good.yaml", tmp_path / "matrix.yaml")
    out = imagekit("matrix", "list", "--format", "json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [e["id"] for e in json.loads(out.stdout)][:1] == ["2.6.0-cu118-py3.11-runtime"]
    missing = imagekit("matrix", "list")  # the fixture's own folder holds none
    assert missing.returncode == 2 and "matrix.yaml" in missing.stderr


def test_only_that_matches_nothing_exits_2(imagekit):
    out = imagekit("matrix", "list", *PRODUCT, "--only", "*rocm*")
    assert out.returncode == 2 and "matches no image" in out.stderr and "Traceback" not in out.stderr


def test_bad_flag_value_exits_2(imagekit):
    out = imagekit("test", *PRODUCT, "--gpus", "some")
    assert out.returncode == 2 and "expected all, none, auto or device=0,1" in out.stderr


def test_render_writes_every_selected_context(imagekit, tmp_path):
    out = imagekit("render", *PRODUCT, "--out", str(tmp_path / "out"), "--only", "*cu118*")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "2.6.0-cu118-py3.11-devel",
        "2.6.0-cu118-py3.11-runtime",
        "2.6.0-cu118-py3.11-runtime-tracking",
    ]


def current_lock(path: Path, *matrices: Path) -> Path:
    """A lock current for ``matrices`` (made-up pins; hashes by imagekit's own Lock API, so a
    template edit does not make it stale), as `imagekit lock` would write it."""
    matrix = load_matrix(list(matrices))
    lock = Lock(path)
    pins = "torch==2.6.0 \\\n    --hash=sha256:" + "b" * 64 + "\n"
    for image in matrix.images:  # parents first: an extension's hash covers its parent's pins
        lock.images[image.id] = Locked("", "sha256:" + "a" * 64 if image.parent is None else None, pins, {})
        lock.images[image.id] = Locked(lock.inputs(image, matrix), lock.images[image.id].base, pins, {}, lock.resolution(image))
    lock.write(matrix.files)
    return path


def test_unreachable_engine_is_a_clear_error(imagekit, tmp_path):
    # tests/unit/conftest.py points DOCKER_HOST at a socket that does not exist.
    lock = current_lock(tmp_path / "local.lock", M / "product-like.yaml", M / "product-like-local.yaml")
    out = imagekit("test", *LOCAL, "--lock", str(lock), "--only", "*cu121*runtime", "--gpus", "none", "--reports", str(tmp_path / "r"))
    assert out.returncode == 2
    assert "cannot reach the Docker engine" in out.stderr and "TIP" in out.stderr and "Traceback" not in out.stderr


def test_build_without_a_lock_file_locks_first_and_locked_refuses(imagekit, tmp_path, monkeypatch):
    missing = tmp_path / "nope.lock"
    out = imagekit("build", *PRODUCT, "--lock", str(missing), "--locked")
    assert out.returncode == 2
    assert f"no lock file {missing}, and --locked refuses to lock on this host" in out.stderr and "run `imagekit lock`" in out.stderr
    monkeypatch.setenv("IMAGEKIT_LOCKED", "1")  # what CI sets once per job
    out = imagekit("build", *PRODUCT, "--lock", str(missing))
    assert out.returncode == 2 and "--locked refuses" in out.stderr
    monkeypatch.delenv("IMAGEKIT_LOCKED")
    # Without --locked it sets out to lock (here it needs the engine, which unit tests have none of).
    out = imagekit("build", *PRODUCT, "--lock", str(missing))
    assert out.returncode == 2
    assert f"no lock file {missing}: locking 6 image(s) first" in out.stderr and "cannot reach the Docker engine" in out.stderr
    assert not missing.exists(), "nothing half-done is written"


def test_commands_refuse_options_that_do_not_concern_them(imagekit):
    out = imagekit("build", "--dry-run")
    assert out.returncode == 2, "a build asked for a dry run must not build for real"
    assert "`imagekit build` does not take --dry-run: it concerns `imagekit promote`, `imagekit publish`" in out.stderr
    out = imagekit("test", "--jobs", "3")
    assert out.returncode == 2
    assert "set IMAGEKIT_JOBS" in out.stderr, "the tip names the way to hand it to several sessions"
    out = imagekit("render", "--gpus=all")
    assert out.returncode == 2 and "it concerns `imagekit test`" in out.stderr
    out = imagekit("build", "--frobnicate")
    assert out.returncode == 2 and "unrecognized arguments: --frobnicate" in out.stderr


def test_an_environment_default_is_checked_like_its_flag_and_only_where_it_concerns_the_command(imagekit, monkeypatch):
    monkeypatch.setenv("IMAGEKIT_GPUS", "some")
    out = imagekit("test", *PRODUCT)
    assert out.returncode == 2
    assert "$IMAGEKIT_GPUS ('some'): expected all, none, auto or device=0,1" in out.stderr
    assert imagekit("matrix", "validate", *PRODUCT).returncode == 0, "validate takes no --gpus, so it ignores the variable"


def test_options_left_out_come_from_the_environment_and_given_ones_win(imagekit, monkeypatch):
    monkeypatch.setenv("IMAGEKIT_MATRIX", f"{M / 'product-like.yaml'} {M / 'product-like-local.yaml'}")
    monkeypatch.setenv("IMAGEKIT_ONLY", "*-tracking")
    run = imagekit("matrix", "list", "--format", "json")
    assert run.returncode == 0, run.stderr
    assert [e["id"] for e in json.loads(run.stdout)] == ["2.6.0-cu121-py3.11-runtime-tracking"], (
        "the overlay's one variant, its extension only"
    )
    monkeypatch.setenv("IMAGEKIT_MATRIX", str(M / "product-like.yaml"))
    given = imagekit("matrix", "list", "--format", "json", "--only", "*cu118*runtime")
    assert [e["id"] for e in json.loads(given.stdout)] == ["2.6.0-cu118-py3.11-runtime"]


def test_github_cells_group_extensions_with_their_parent_and_carry_runner_labels(imagekit, tmp_path):
    out = imagekit("matrix", "list", *PRODUCT, "--format", "github")
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
    assert runtime["runs_on"] == ["self-hosted", "linux"], "a build needs no GPU"
    assert all(c["changed"] and c["timeout_minutes"] == 120 and c["cache_registry"] == "" for c in cells.values())
    overlay = tmp_path / "cache.yaml"
    overlay.write_text("ci: {build_cache: cache.example.com/ml/buildkit}\n")
    with_cache = json.loads(imagekit("matrix", "list", *PRODUCT, "--matrix", str(overlay), "--format", "github").stdout)["include"]
    assert {c["cache_registry"] for c in with_cache} == {"cache.example.com/ml/buildkit"}
    # Test cells: each family on each runner class it requires, with the driver branch it needs.
    tests = json.loads(imagekit("matrix", "list", *PRODUCT, "--format", "github-tests").stdout)["include"]
    assert [(c["id"], c["runner_class"]) for c in tests] == [(i, "gpu") for i in cells]
    assert tests[2]["runs_on"] == ["self-hosted", "linux", "gpu", "nvidia-525"] and tests[2]["images"] == runtime["images"]
    assert tests[1]["runs_on"][-1] == "nvidia-450"

    # Against an earlier listing: only what differs is changed; --changed-only keeps just that.
    earlier = json.loads(out.stdout)
    earlier["include"][2]["inputs_id"] = "0" * 64
    (tmp_path / "base.json").write_text(json.dumps(earlier))
    changed = imagekit("matrix", "list", *PRODUCT, "--format", "github", "--changed-against", str(tmp_path / "base.json"), "--changed-only")
    assert [c["id"] for c in json.loads(changed.stdout)["include"]] == ["2.6.0-cu121-py3.11-runtime"]
    (tmp_path / "bad.json").write_text("{}")
    bad = imagekit("matrix", "list", *PRODUCT, "--format", "github", "--changed-against", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "is not a `imagekit matrix list --format github` listing" in bad.stderr


def test_a_template_change_changes_every_cell_that_renders_it(imagekit, project_dir):
    before = json.loads(imagekit("matrix", "list", *PRODUCT, "--format", "github").stdout)["include"]
    shutil.copytree(ROOT / "templates", project_dir / "templates")
    extension = project_dir / "templates" / "Extension.Dockerfile.j2"
    extension.write_text(extension.read_text() + "# changed\n")
    overlay = project_dir / "o.yaml"
    overlay.write_text(f"templates: {project_dir / 'templates'}\n")
    after = json.loads(imagekit("matrix", "list", *PRODUCT, "--matrix", str(overlay), "--format", "github").stdout)["include"]
    changed = {a["id"] for a, b in zip(after, before, strict=True) if a["inputs_id"] != b["inputs_id"]}
    assert changed == {"2.6.0-cu118-py3.11-runtime", "2.6.0-cu121-py3.11-runtime"}, "only the cells holding an extension"


def test_build_locks_only_what_the_lock_lacks_and_refuses_a_stale_entry_first(imagekit, tmp_path, monkeypatch):
    # A lock written for one cell (`--only`), then a build of more: the absent ones are locked, the
    # present ones kept. Here the locking needs the engine, so it stops there, having written nothing.
    lock = current_lock(tmp_path / "p.lock", M / "product-like.yaml")
    text = lock.read_text()
    data = yaml.safe_load(text)
    del data["images"]["2.6.0-cu118-py3.11-devel"]
    lock.write_text(yaml.safe_dump(data))
    kept = lock.read_text()
    out = imagekit("build", *PRODUCT, "--lock", str(lock))
    assert out.returncode == 2 and f"{lock} lacks 2.6.0-cu118-py3.11-devel: locking 1 image(s) first" in out.stderr, out.stderr
    assert "cannot reach the Docker engine" in out.stderr and lock.read_text() == kept
    assert imagekit("build", *PRODUCT, "--lock", str(lock), "--locked").returncode == 2
    # A stale entry beside the absent one: refused with the remedy, before any locking.
    data["images"]["2.6.0-cu121-py3.11-runtime"]["inputs"] = "0" * 64
    lock.write_text(yaml.safe_dump(data))
    out = imagekit("build", *PRODUCT, "--lock", str(lock))
    assert out.returncode == 2 and "the lock does not match the matrix" in out.stderr and "locking" not in out.stderr


def test_a_switch_set_in_the_environment_is_turned_off_by_its_no_flag(imagekit, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEKIT_LOCKED", "1")
    out = imagekit("build", *PRODUCT, "--lock", str(tmp_path / "none.lock"), "--no-locked")
    assert out.returncode == 2 and "locking 6 image(s) first" in out.stderr and "--locked refuses" not in out.stderr


def test_the_default_folders_are_checked_like_given_ones(imagekit, tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "reports").write_text("not a folder")
    (work / "build").symlink_to(elsewhere)
    smoke = imagekit("smoke", *PRODUCT, cwd=work)
    assert smoke.returncode == 2 and "--reports (default reports): reports is a file, not a folder" in smoke.stderr
    render = imagekit("render", *PRODUCT, cwd=work)
    assert render.returncode == 2 and "--out (default build): build is a symlink" in render.stderr
    assert list(elsewhere.iterdir()) == [], "nothing was written through the symlink"


def test_options_are_never_abbreviated(imagekit):
    out = imagekit("build", *PRODUCT, "--re", "x")
    assert out.returncode == 2 and "unrecognized arguments: --re x" in out.stderr
