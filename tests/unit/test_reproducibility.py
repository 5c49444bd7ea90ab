"""The reproducibility level a builder reaches, from its BuildKit version, and what the build
command then asks of it. The CLIs are stand-in scripts; the engine is a stand-in that only answers
its version (this host's real BuildKit 0.8 is covered by the integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagekit.engine import Builder
from imagekit.reproducibility import BIT_FOR_BIT, FILE_TREE, TIMESTAMPS, detect, engine_buildkit, level_for


class EngineAt:
    def __init__(self, version: str) -> None:
        self._version = version

    def version(self) -> dict[str, str]:
        return {"Version": self._version}


def buildx_cli(folder: Path, inspect: str) -> Builder:
    script = folder / "docker"
    script.write_text(f"#!/bin/sh\nif [ \"$1 $2\" = 'buildx inspect' ]; then printf '%s\\n' '{inspect}'; exit 0; fi\nexit 1\n")
    script.chmod(0o755)
    return Builder(str(script), "buildx", "28.2.2")


@pytest.mark.parametrize(
    ("buildkit", "kind", "level"),
    [
        ("0.8", "buildkit", FILE_TREE),
        ("0.10", "buildx", FILE_TREE),
        ("0.11", "buildkit", TIMESTAMPS),
        ("0.13", "buildkit", TIMESTAMPS),  # plain `docker build` cannot pass exporter options
        ("0.13", "buildx", BIT_FOR_BIT),
        ("0.20", "buildx", BIT_FOR_BIT),
        (None, "buildx", FILE_TREE),
    ],
)
def test_level_follows_the_buildkit_version_and_the_cli(buildkit, kind, level):
    assert level_for(buildkit, kind) == level


def test_engine_releases_map_to_the_buildkit_they_embed():
    assert engine_buildkit("20.10.24+dfsg1") == "0.8"
    assert engine_buildkit("24.0.7") == "0.11"
    assert engine_buildkit("26.1.4") == "0.13"
    assert engine_buildkit("28.2.2") == "0.13", "newer than listed: at least the last entry's"
    assert engine_buildkit("19.03.15") is None


def test_this_hosts_kind_of_builder_reaches_file_trees(tmp_path):
    repro = detect(Builder("/usr/bin/docker", "buildkit", "20.10.24+dfsg1"), EngineAt("20.10.24+dfsg1"))  # type: ignore[arg-type]
    assert (repro.level, repro.buildkit, repro.source_date_epoch) == (FILE_TREE, "0.8", False)
    assert "Docker Engine 20.10.24+dfsg1" in repro.describe() and "digests differ" in repro.describe()


def test_buildx_with_buildkit_013_builds_with_source_date_epoch_and_rewritten_timestamps(tmp_path):
    builder = buildx_cli(tmp_path, "Name:   default\nDriver: docker\n BuildKit version: v0.13.2")
    repro = detect(builder, EngineAt("20.10.24"))  # type: ignore[arg-type]
    assert (repro.level, repro.buildkit) == (BIT_FOR_BIT, "0.13")
    argv, _ = builder.command(tmp_path, ["r:a"], {}, {}, source_date_epoch=1795478400, rewrite_timestamp=repro.rewrite_timestamp)
    assert argv[:5] == [builder.docker, "buildx", "build", "--output", "type=docker,rewrite-timestamp=true"]
    assert "--load" not in argv and argv[argv.index("--build-arg") + 1] == "SOURCE_DATE_EPOCH=1795478400"


def test_older_buildx_versions_print_buildkit_differently(tmp_path):
    assert detect(buildx_cli(tmp_path, "Buildkit: v0.12.5"), EngineAt("20.10.24")).level == TIMESTAMPS  # type: ignore[arg-type]
