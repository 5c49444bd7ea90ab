"""The reproducibility level a builder reaches, judged from what its probe builds gave (the probe
itself runs on the real engines: tests/integration/test_end_to_end.py, doctor on each engine), and
the build command each level asks for."""

from __future__ import annotations

import json

import pytest

from imagekit.adapters.buildkit import LOAD, OCI, Builder
from imagekit.errors import EngineError
from imagekit.stages.reproducibility import (
    BIT_FOR_BIT,
    FILE_TREE,
    PROBE_EPOCH,
    TIMESTAMPS,
    Reproducibility,
    _seconds,
    cache_key,
    detect,
    judge,
)

EPOCH_ISO = "2023-11-14T22:13:20Z"  # PROBE_EPOCH


def test_the_probe_epoch_reads_back_from_dockers_time_formats():
    assert _seconds(EPOCH_ISO) == PROBE_EPOCH
    assert _seconds("2023-11-14T22:13:20.000000000Z") == PROBE_EPOCH
    assert _seconds("2026-11-25T09:45:05.470135965Z") != PROBE_EPOCH
    assert _seconds("not a time") is None


@pytest.mark.parametrize(
    ("oci_ids", "oci_failure", "created", "level", "method"),
    [
        # containerd store: two OCI-archive builds with different file times load as one image.
        (("sha256:a", "sha256:a"), "", EPOCH_ISO, BIT_FOR_BIT, OCI),
        # An OCI archive whose file times were not rewritten: not bit-for-bit, whatever else holds.
        (("sha256:a", "sha256:b"), "", EPOCH_ISO, TIMESTAMPS, LOAD),
        # classic store: no OCI archives, but SOURCE_DATE_EPOCH is honoured.
        ((None, None), "ERROR: OCI exporter is not supported for the docker driver", EPOCH_ISO, TIMESTAMPS, LOAD),
        # BuildKit 0.8 (Engine 20.10, no buildx): the build's own time.
        ((None, None), "", "2026-11-25T09:45:05.470135965Z", FILE_TREE, LOAD),
        # Nothing could be built: assume nothing.
        ((None, None), "", None, FILE_TREE, LOAD),
    ],
)
def test_the_level_is_what_the_probe_builds_showed(oci_ids, oci_failure, created, level, method):
    found_level, found_method, evidence = judge(oci_ids, oci_failure, created, "no space left on device")
    assert (found_level, found_method) == (level, method)
    if oci_failure:
        assert oci_failure in evidence, "the builder's own refusal is shown"
    if created is None:
        assert "no space left on device" in evidence


def test_each_level_says_what_it_proves():
    bit = Reproducibility(BIT_FOR_BIT, OCI, "two builds … gave one image id", "probed now")
    assert bit.bit_for_bit and bit.source_date_epoch and "equal image digests" in bit.describe()
    stamps = Reproducibility(TIMESTAMPS, LOAD, "…", "probed now")
    assert not stamps.bit_for_bit and stamps.source_date_epoch and "digests differ" in stamps.describe()
    tree = Reproducibility(FILE_TREE, LOAD, "…", "probed now")
    assert not tree.source_date_epoch and "equal file trees" in tree.describe()


def test_an_oci_build_writes_an_archive_with_rewritten_times_and_no_provenance(tmp_path):
    builder = Builder("/usr/bin/docker", "buildx", "28.5.2", "0.29.1")
    tarball = tmp_path / "image.tar"
    argv, _ = builder.command(tmp_path, ["r:a", "r:a-123"], {}, {}, source_date_epoch=1795478400, oci_tarball=tarball)
    assert argv[:4] == ["/usr/bin/docker", "buildx", "build", "--provenance=false"]
    assert argv[argv.index("--output") + 1] == f"type=oci,dest={tarball},rewrite-timestamp=true,name=r:a"
    assert "--load" not in argv and "--tag" not in argv, "the archive is loaded and tagged afterwards"
    assert argv[argv.index("--build-arg") + 1] == "SOURCE_DATE_EPOCH=1795478400"
    assert "then docker load" in builder.describe(OCI) and "buildx 0.29.1" in builder.describe(OCI)


class _UnreachableEngine:
    def info(self) -> dict[str, str]:
        raise EngineError("cannot reach the Docker engine")


class _KnownEngine:
    store = "containerd"

    def info(self) -> dict[str, str]:
        return {"ID": "engine-1"}

    def version(self) -> dict[str, str]:
        return {"Version": "28.5.2"}


class _NoBuilds:
    """A build runner for a test in which nothing may be built."""

    def run(self, argv, env, log, on_line=None):
        raise AssertionError(f"nothing should be built here: {argv}")

    def stop_all(self):
        pass


def test_a_cached_answer_is_used_and_an_engine_that_does_not_answer_is_not_probed(tmp_path):
    builder = Builder("/usr/bin/docker", "buildx", "28.5.2", "0.29.1")
    assert detect(builder, _UnreachableEngine(), _NoBuilds(), cache=tmp_path / "b.json").level == FILE_TREE  # type: ignore[arg-type]
    key = cache_key(builder, _KnownEngine())  # type: ignore[arg-type]
    record = {"level": BIT_FOR_BIT, "method": OCI, "evidence": "two builds …", "probed": "2026-11-25T09:45:01Z"}
    (tmp_path / "b.json").write_text(json.dumps({key: record}))
    found = detect(builder, _KnownEngine(), _NoBuilds(), cache=tmp_path / "b.json")  # type: ignore[arg-type]
    assert (found.level, found.method) == (BIT_FOR_BIT, OCI) and "cached in" in found.probed
    other = Builder("/usr/bin/docker", "buildx", "28.5.2", "0.30.0")
    assert cache_key(other, _KnownEngine()) != key, "another buildx is probed afresh"  # type: ignore[arg-type]


def test_zstd_layers_go_into_the_oci_archive_and_only_there(tmp_path):
    builder = Builder("/usr/bin/docker", "buildx", "28.5.2", "0.29.1")
    tarball = tmp_path / "image.tar"
    argv, _ = builder.command(tmp_path, ["r:a"], {}, {}, oci_tarball=tarball, compression="zstd")
    assert (
        argv[argv.index("--output") + 1]
        == f"type=oci,dest={tarball},rewrite-timestamp=true,name=r:a,compression=zstd,force-compression=true"
    )
    gzip, _ = builder.command(tmp_path, ["r:a"], {}, {}, oci_tarball=tarball)
    assert "compression" not in gzip[gzip.index("--output") + 1], "gzip images are built as they always were"
    with pytest.raises(EngineError, match="zstd layers need a builder that writes OCI archives"):
        builder.command(tmp_path, ["r:a"], {}, {}, compression="zstd")
