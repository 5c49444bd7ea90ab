"""Which docker CLI builds: buildx when present, a pre-23 CLI with DOCKER_BUILDKIT=1, else a remedy.
The CLIs here are empty files in folders of a PATH value handed to `docker_clis` (the environment's
PATH is left alone); what each answers to `version` and `buildx version` comes from a fake probe, in
place of running it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagekit.adapters.buildkit import Builder, RegistryCache, docker_clis, find_builder
from imagekit.errors import EngineError


def fake_docker(folder: Path, version: str, buildx: bool, answers: dict[str, tuple[str, bool]]) -> Path:
    """An executable `docker` in ``folder``, never run: ``answers`` says what it would answer."""
    folder.mkdir(parents=True)
    script = folder / "docker"
    script.write_text("#!/bin/sh\nexit 1\n")
    script.chmod(0o755)
    answers[str(script)] = (version, buildx)
    return script


def probe(answers: dict[str, tuple[str, bool]]):
    """What the fake CLIs print: `version` → the version; `buildx version` → a buildx line, or rc 1."""

    def run(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
        version, buildx = answers[argv[0]]
        if argv[1] == "version":
            return subprocess.CompletedProcess(argv, 0, f"{version}\n", "")
        if argv[1:] == ["buildx", "version"]:
            return subprocess.CompletedProcess(argv, 0 if buildx else 1, "github.com/docker/buildx v0.29.1 abc\n" if buildx else "", "")
        return subprocess.CompletedProcess(argv, 1, "", "")

    return run


def test_buildx_is_preferred(tmp_path):
    answers: dict[str, tuple[str, bool]] = {}
    cli = fake_docker(tmp_path / "a", "28.2.2", True, answers)
    builder = find_builder(probe(answers), docker_clis(str(cli.parent)))
    assert (builder.kind, builder.docker, builder.buildx_version) == ("buildx", str(cli), "0.29.1")
    argv, _ = builder.command(tmp_path, ["r:a", "r:b"], {"k": "v"}, {"pip.conf": tmp_path / "p"})
    # No provenance attestation: it carries the build's times, and the classic store drops it anyway.
    assert argv[:5] == [str(cli), "buildx", "build", "--provenance=false", "--load"]
    assert argv.count("--tag") == 2
    assert ["--secret", f"id=pip.conf,src={tmp_path / 'p'}"] == argv[argv.index("--secret") : argv.index("--secret") + 2]


def test_newer_cli_without_buildx_is_passed_over_for_an_older_one(tmp_path):
    answers: dict[str, tuple[str, bool]] = {}
    new = fake_docker(tmp_path / "new", "28.2.2", False, answers)
    old = fake_docker(tmp_path / "old", "20.10.24+dfsg1", False, answers)
    builder = find_builder(probe(answers), docker_clis(f"{new.parent}:{old.parent}"))
    assert (builder.kind, builder.docker) == ("buildkit", str(old))
    argv, env = builder.command(tmp_path, ["r:a"], {}, {})
    assert argv[:2] == [str(old), "build"] and env["DOCKER_BUILDKIT"] == "1"
    assert "--no-cache" not in argv and "--build-arg" not in argv
    argv, _ = builder.command(tmp_path, ["r:a"], {}, {}, {"IMAGEKIT_BASE": "b@sha256:1"}, no_cache=True)
    assert "--no-cache" in argv and argv[argv.index("--build-arg") + 1] == "IMAGEKIT_BASE=b@sha256:1"


def test_no_usable_cli_names_what_to_install(tmp_path):
    answers: dict[str, tuple[str, bool]] = {}
    new = fake_docker(tmp_path / "new", "28.2.2", False, answers)
    with pytest.raises(EngineError, match="no buildx plugin") as info:
        find_builder(probe(answers), docker_clis(str(new.parent)))
    assert "docker-buildx" in (info.value.tip or "") and "older than 23.0" in (info.value.tip or "")
    with pytest.raises(EngineError, match="no docker CLI found on PATH"):
        find_builder(probe(answers), docker_clis(str(tmp_path / "empty")))


def test_each_cli_on_path_counts_once_and_imagekit_docker_picks_one(tmp_path):
    answers: dict[str, tuple[str, bool]] = {}
    first = fake_docker(tmp_path / "a", "28.2.2", True, answers)
    (tmp_path / "b").symlink_to(tmp_path / "a")  # a second PATH folder leading to the same file
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "docker").write_text("not executable\n")
    assert docker_clis(f"{tmp_path / 'a'}:{tmp_path / 'b'}:{tmp_path / 'c'}") == [str(first)]
    assert docker_clis(str(tmp_path / "a"), explicit="/opt/docker/bin/docker") == ["/opt/docker/bin/docker"]


def test_a_registry_cache_is_read_everywhere_buildx_builds_and_written_where_the_driver_can(tmp_path):
    buildx = Builder("/usr/bin/docker", "buildx", "28.5.2", "0.29.1")
    ref = "registry.example:5000/cache/imagekit/pytorch:buildcache-2.6.0-cu121-py3.11-runtime"
    written, _ = buildx.command(tmp_path, ["t:1"], {}, {}, cache=RegistryCache(ref, export=True))
    assert written[written.index("--cache-from") + 1] == f"type=registry,ref={ref}"
    assert written[written.index("--cache-to") + 1].startswith(f"type=registry,ref={ref},mode=max,image-manifest=true,")
    assert "ignore-error=true" in written[written.index("--cache-to") + 1], "a cache that cannot be written never fails the build"
    read, _ = buildx.command(tmp_path, ["t:1"], {}, {}, cache=RegistryCache(ref, export=False))
    assert "--cache-from" in read and "--cache-to" not in read
    with pytest.raises(EngineError, match="needs the buildx plugin"):
        Builder("/usr/bin/docker", "buildkit", "20.10.24").command(tmp_path, ["t:1"], {}, {}, cache=RegistryCache(ref, export=False))
