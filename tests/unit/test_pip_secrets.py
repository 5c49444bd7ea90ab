"""Index URLs and CA bundles reach builds only as secret files, and unset variables are caught early."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from imagekit.adapters.secrets import CA_SECRET, CONF_SECRET, expand, pip_secrets
from imagekit.errors import ConfigurationError


def test_expand_uses_environment_then_default(monkeypatch):
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    assert expand("${PIP_INDEX_URL:-https://pypi.org/simple}") == "https://pypi.org/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror/simple")
    assert expand("${PIP_INDEX_URL:-https://pypi.org/simple}") == "https://mirror/simple"


def test_unset_variable_without_default_names_it(monkeypatch):
    monkeypatch.delenv("MIRROR_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="MIRROR_TOKEN, which is not set"):
        expand("https://u:${MIRROR_TOKEN}@mirror/simple")


def test_secret_files_are_private_and_removed_afterwards(monkeypatch, tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("PIP_CERT", str(ca))
    monkeypatch.setenv("TOKEN", "s3cret")
    template = "https://u:${TOKEN}@mirror/simple"
    with pip_secrets({template}) as secrets:
        files = secrets[template]
        conf = files[CONF_SECRET]
        assert files[CA_SECRET] == ca
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        assert "index-url = https://u:s3cret@mirror/simple" in conf.read_text()
        assert f"cert = /run/secrets/{CA_SECRET}" in conf.read_text()
    assert not conf.exists()


def test_no_ca_bundle_means_no_cert_setting(monkeypatch):
    monkeypatch.delenv("PIP_CERT", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pip_secrets({"https://pypi.org/simple"}) as secrets:
        files = secrets["https://pypi.org/simple"]
        assert CA_SECRET not in files
        assert "cert" not in files[CONF_SECRET].read_text()


def test_ca_variable_pointing_nowhere_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PIP_CERT", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match="PIP_CERT=.* does not name a file"):
        with pip_secrets({"https://pypi.org/simple"}):
            pass
