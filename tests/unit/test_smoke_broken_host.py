"""The smoke suite on a bare host (`imagekit smoke`), against a deliberately broken environment: a
torch whose import fails the way it does when a CUDA library is missing. Failure must be loud,
say what is wrong and what to do, and still leave a schema-valid report."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import xmllint_schema

MATRIX = ("--matrix", str(Path(__file__).resolve().parent.parent / "matrices" / "product-like.yaml"))
BROKEN_TORCH = 'raise ImportError("libcudnn.so.9: cannot open shared object file: No such file or directory")\n'


@pytest.mark.subprocess  # `imagekit smoke` runs the smoke suite in a child interpreter: that run is what is tested
@pytest.mark.tool("xmllint")
def test_broken_torch_fails_loudly_with_the_remedy(imagekit, tmp_path, monkeypatch):
    (tmp_path / "site" / "torch").mkdir(parents=True)
    (tmp_path / "site" / "torch" / "__init__.py").write_text(BROKEN_TORCH)
    with monkeypatch.context() as m:  # what the suite's interpreter inherits: the broken torch first
        for name, value in {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(tmp_path / "site"), "HOME": str(tmp_path)}.items():
            m.setenv(name, value)
        out = imagekit("smoke", *MATRIX, "--reports", str(tmp_path / "reports"), "--only", "*cu121*runtime")
    assert out.returncode == 1, out.stderr
    assert "did not pass the smoke suite" in out.stderr and "Traceback" not in out.stderr
    report = tmp_path / "reports" / "junit" / "host.xml"
    xmllint_schema(tmp_path / "reports" / "junit.xml")
    messages = {
        c.get("name"): (c.find("error") if c.find("error") is not None else c.find("failure")) for c in ET.parse(report).iter("testcase")
    }
    assert messages["test_torch_version"] is not None
    text = messages["test_torch_version"].get("message")
    assert "torch does not import (libcudnn.so.9: cannot open shared object file" in text
    assert "`pip install torch==2.6.0`" in text and "rebuild it with `imagekit build`" in text
    # Only the environment tests ran: no bare collection errors from the model modules.
    assert all(name.startswith("test_") for name in messages) and "collection" not in report.read_text()


def test_host_mode_checks_one_image_at_a_time(imagekit, tmp_path):
    out = imagekit("smoke", *MATRIX, "--only", "*cu121*", "--reports", str(tmp_path))
    assert out.returncode == 2 and "--only selects 3 images" in out.stderr
