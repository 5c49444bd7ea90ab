"""The lock file on real parts: uv resolving against PyPI, bases pinned on the engine, and pip's
hash checking inside a real BuildKit build."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from e2e_workspace import EXTENSION_ID, IMAGE_ID, LOCAL_BASE, Workspace
from engines import ALL, CLASSIC

pytestmark = pytest.mark.docker


def lock_file(ws: Workspace) -> Path:
    return Path(ws.matrices[ws.matrices.index("--lock") + 1])


def with_lock(ws: Workspace, lock: Path) -> list[str]:
    args = list(ws.matrices)
    args[args.index("--lock") + 1] = str(lock)
    return args


@pytest.mark.engines(*ALL)
def test_the_lock_pins_the_whole_set_with_hashes_and_rewrites_to_the_same_bytes(ws, engine, tmp_path):
    data = yaml.safe_load(lock_file(ws).read_text())
    entry = data["images"][IMAGE_ID]
    # On either store: the containerd store lists a RepoDigest for it too, but no registry serves it.
    assert entry["base"] == engine.inspect_image(LOCAL_BASE)["Id"], "a local base is pinned by its image id"
    pinned = dict(re.findall(r"^([a-z0-9._-]+)==(\S+) \\$", entry["requirements"], re.MULTILINE))
    # torch's CUDA libraries come in as pinned wheels too, not only what the matrix names.
    assert pinned["torch"] == "2.6.0" and pinned["nvidia-cudnn-cu12"] == "9.1.0.70" and pinned["numpy"] == "2.2.6"
    blocks = entry["requirements"].split("==")[1:]
    assert blocks and all("--hash=sha256:" in b for b in blocks), "every package carries its hashes"
    # apt: the local base has Python 3.11 with venv, so the base image installs nothing from apt; the
    # extension's git comes pinned with every dependency the base lacks, as apt itself resolved them.
    assert entry["apt"] == {}
    apt = dict(pin.split("=", 1) for pin in data["images"][EXTENSION_ID]["apt"]["extension"])
    assert apt["git"].startswith("1:2.") and "git-man" in apt and "perl" in apt, apt

    again = tmp_path / "again.lock"
    out = ws.imagekit("lock", *with_lock(ws, again))
    assert out.returncode == 0, out.stderr
    assert again.read_text() == lock_file(ws).read_text()
    check = ws.imagekit("lock", "--check", *ws.matrices)
    assert check.returncode == 0 and "is current" in check.stderr, check.stderr

    # Locking again keeps current entries as they are: no drift to newer releases of anything.
    data = yaml.safe_load(again.read_text())
    data["images"][IMAGE_ID]["requirements"] += "# kept, not re-resolved\n"
    again.write_text(yaml.safe_dump(data))
    out = ws.imagekit("lock", *with_lock(ws, again))
    assert out.returncode == 0 and "kept" in out.stdout, out.stdout + out.stderr
    assert yaml.safe_load(again.read_text())["images"][IMAGE_ID]["requirements"].endswith("# kept, not re-resolved\n")


def test_a_changed_pin_makes_the_lock_stale_for_check_and_build(ws, tmp_path):
    overlay = tmp_path / "bump.yaml"
    overlay.write_text('packages: ["numpy==2.2.5", "pytest==8.3.5"]\n')
    check = ws.imagekit("lock", "--check", *ws.matrices, "--matrix", str(overlay))
    assert check.returncode == 1
    assert f"{IMAGE_ID} is stale in {lock_file(ws)}" in check.stderr and "run `imagekit lock`" in check.stderr
    build = ws.imagekit("build", *ws.matrices, "--matrix", str(overlay), "--reports", str(tmp_path / "r"), "--out", str(ws.out))
    assert build.returncode == 2 and "the lock does not match the matrix" in build.stderr and "run `imagekit lock`" in build.stderr


def test_a_field_outside_the_resolution_stales_the_lock_and_relocking_keeps_its_pins(ws, tmp_path):
    """The lock covers everything that reaches the image, the user included: a pull request that
    changes it cannot pass `lock --check` with the old lock. Relocking resolves nothing again."""
    overlay = tmp_path / "user.yaml"
    overlay.write_text("user: {name: trainer, uid: 1001}\n")
    check = ws.imagekit("lock", "--check", *ws.matrices, "--matrix", str(overlay))
    assert check.returncode == 1 and f"{IMAGE_ID} is stale in {lock_file(ws)}" in check.stderr, check.stderr
    relocked = tmp_path / "user.lock"
    relocked.write_text(lock_file(ws).read_text())
    out = ws.imagekit("lock", *with_lock(ws, relocked), "--matrix", str(overlay))
    assert out.returncode == 0 and "kept, inputs recorded" in out.stdout, out.stdout + out.stderr
    before, after = (yaml.safe_load(p.read_text())["images"] for p in (lock_file(ws), relocked))
    assert {k: (v["requirements"], v["apt"], v["base"]) for k, v in after.items()} == {
        k: (v["requirements"], v["apt"], v["base"]) for k, v in before.items()
    }
    assert all(after[k]["inputs"] != before[k]["inputs"] for k in before)
    check = ws.imagekit("lock", "--check", *with_lock(ws, relocked), "--matrix", str(overlay))
    assert check.returncode == 0, check.stderr


@pytest.mark.engines(CLASSIC, primary=False)  # pip refuses it alike in every builder; a build costs minutes on the primary one
def test_a_tampered_hash_is_refused_by_the_build(ws, engine, tmp_path):
    text = lock_file(ws).read_text()
    # Every hash of one small package in the base image's set: pip must refuse the real download.
    start = text.index("iniconfig==", text.index(f"{IMAGE_ID}:"))
    end = text.index("# via", start)
    tampered = tmp_path / "tampered.lock"
    tampered.write_text(text[:start] + re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, text[start:end]) + text[end:])
    before = engine.inspect_image(f"{ws.repo}:{IMAGE_ID}")

    reports = tmp_path / "reports"
    build = ws.imagekit("build", *with_lock(ws, tampered), "--only", IMAGE_ID, "--reports", str(reports), "--out", str(tmp_path / "out"))
    assert build.returncode == 1, build.stdout + build.stderr
    log = (reports / "logs" / f"build-{IMAGE_ID}.log").read_text()
    assert "DO NOT MATCH THE HASHES" in log and "iniconfig" in log, log[-2000:]
    after = engine.inspect_image(f"{ws.repo}:{IMAGE_ID}")
    assert (after or {}).get("Id") == (before or {}).get("Id"), "a refused build must not move the image's tag"


@pytest.mark.engines(*ALL)
def test_a_local_base_that_is_not_the_locked_one_is_refused(ws, tmp_path):
    data = yaml.safe_load(lock_file(ws).read_text())
    data["images"][IMAGE_ID]["base"] = "sha256:" + "f" * 64
    other = tmp_path / "other-base.lock"
    other.write_text(yaml.safe_dump(data))
    reports = tmp_path / "reports"
    build = ws.imagekit("build", *with_lock(ws, other), "--only", IMAGE_ID, "--reports", str(reports), "--out", str(tmp_path / "out"))
    assert build.returncode == 1, build.stdout + build.stderr
    failure = ET.parse(reports / "junit" / "build.xml").getroot().find(".//failure")
    assert failure is not None and "but the lock pins sha256:ffffffffffff" in failure.get("message")
    assert "run `imagekit lock`" in failure.get("message")


def test_an_unreachable_index_fails_the_lock_naming_it_without_its_credential(ws, tmp_path):
    overlay = tmp_path / "unreachable.yaml"
    overlay.write_text('indexes:\n  cu124: "https://imagekit:${IMAGEKIT_INDEX_E2E_TOKEN}@127.0.0.1:9/simple"\n')
    target = tmp_path / "unreachable.lock"
    out = ws.imagekit("lock", *with_lock(ws, target), "--matrix", str(overlay))
    assert out.returncode == 1
    assert "cannot resolve torch==2.6.0" in out.stderr and "against https://127.0.0.1:9/simple" in out.stderr
    assert "--only" in out.stderr and not target.exists()
    assert ws.token not in out.stdout + out.stderr


def test_a_tampered_apt_pin_is_refused_by_the_build(ws, engine, tmp_path):
    data = yaml.safe_load(lock_file(ws).read_text())
    pins = data["images"][EXTENSION_ID]["apt"]["extension"]
    pins[[p.split("=", 1)[0] for p in pins].index("git")] = "git=1:0.0-imagekit-tampered"
    tampered = tmp_path / "tampered-apt.lock"
    tampered.write_text(yaml.safe_dump(data))
    before = engine.inspect_image(f"{ws.repo}:{EXTENSION_ID}")
    reports = tmp_path / "reports"
    args = [*with_lock(ws, tampered), "--only", EXTENSION_ID, "--reports", str(reports), "--out", str(tmp_path / "out")]
    build = ws.imagekit("build", *args)
    assert build.returncode == 1, build.stdout + build.stderr
    log = (reports / "logs" / f"build-{EXTENSION_ID}.log").read_text()
    assert "Version '1:0.0-imagekit-tampered' for 'git' was not found" in log, log[-2000:]
    after = engine.inspect_image(f"{ws.repo}:{EXTENSION_ID}")
    assert (after or {}).get("Id") == (before or {}).get("Id"), "a refused build must not move the image's tag"


def test_an_apt_package_apt_cannot_find_fails_the_lock_naming_it(ws, tmp_path):
    overlay = tmp_path / "no-such-package.yaml"
    overlay.write_text("extensions:\n  tracking:\n    apt: [git, imagekit-no-such-package]\n")
    target = tmp_path / "no-such-package.lock"
    out = ws.imagekit("lock", *with_lock(ws, target), "--matrix", str(overlay))
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{EXTENSION_ID}: apt cannot install the extension packages git, imagekit-no-such-package" in out.stderr
    assert "Unable to locate package imagekit-no-such-package" in out.stderr and not target.exists()
