"""Which docker CLI builds: buildx when present, a pre-23 CLI with DOCKER_BUILDKIT=1, else a remedy.
The CLIs here are small stand-in scripts on PATH that answer `version` and `buildx version`."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagekit.adapters.buildkit import find_builder
from imagekit.errors import EngineError


def fake_docker(folder: Path, version: str, buildx: bool) -> Path:
    folder.mkdir(parents=True)
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = version ]; then echo {version}; exit 0; fi\n'
        f'if [ "$1" = buildx ]; then exit {0 if buildx else 1}; fi\n'
        "exit 1\n"
    )
    script.chmod(0o755)
    return script


def test_buildx_is_preferred(tmp_path, monkeypatch):
    cli = fake_docker(tmp_path / "a", "28.2.2", buildx=True)
    monkeypatch.setenv("PATH", str(cli.parent))
    monkeypatch.delenv("IMAGEKIT_DOCKER", raising=False)
    builder = find_builder()
    assert (builder.kind, builder.docker) == ("buildx", str(cli))
    argv, _ = builder.command(tmp_path, ["r:a", "r:b"], {"k": "v"}, {"pip.conf": tmp_path / "p"})
    # No provenance attestation: it carries the build's times, and the classic store drops it anyway.
    assert argv[:5] == [str(cli), "buildx", "build", "--provenance=false", "--load"]
    assert argv.count("--tag") == 2
    assert ["--secret", f"id=pip.conf,src={tmp_path / 'p'}"] == argv[argv.index("--secret") : argv.index("--secret") + 2]


def test_newer_cli_without_buildx_is_passed_over_for_an_older_one(tmp_path, monkeypatch):
    new = fake_docker(tmp_path / "new", "28.2.2", buildx=False)
    old = fake_docker(tmp_path / "old", "20.10.24+dfsg1", buildx=False)
    monkeypatch.setenv("PATH", f"{new.parent}:{old.parent}")
    monkeypatch.delenv("IMAGEKIT_DOCKER", raising=False)
    builder = find_builder()
    assert (builder.kind, builder.docker) == ("buildkit", str(old))
    argv, env = builder.command(tmp_path, ["r:a"], {}, {})
    assert argv[:2] == [str(old), "build"] and env["DOCKER_BUILDKIT"] == "1"
    assert "--no-cache" not in argv and "--build-arg" not in argv
    argv, _ = builder.command(tmp_path, ["r:a"], {}, {}, {"IMAGEKIT_BASE": "b@sha256:1"}, no_cache=True)
    assert "--no-cache" in argv and argv[argv.index("--build-arg") + 1] == "IMAGEKIT_BASE=b@sha256:1"


def test_no_usable_cli_names_what_to_install(tmp_path, monkeypatch):
    new = fake_docker(tmp_path / "new", "28.2.2", buildx=False)
    monkeypatch.setenv("PATH", str(new.parent))
    monkeypatch.delenv("IMAGEKIT_DOCKER", raising=False)
    with pytest.raises(EngineError, match="no buildx plugin") as info:
        find_builder()
    assert "docker-buildx" in (info.value.tip or "") and "older than 23.0" in (info.value.tip or "")
