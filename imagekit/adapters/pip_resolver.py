"""Pinned requirements → the complete, hashed requirement set an image installs, resolved by uv
(`uv pip compile`) against the image's own index and Python. The only module that runs uv."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from uv import find_uv_bin

from imagekit.adapters.secrets import ca_bundle, expand
from imagekit.core.provenance import public_url
from imagekit.errors import ImagekitError

# The images are linux/amd64 with glibc >= 2.31 (Debian 11+, Ubuntu 20.04+); torch's wheels need 2.28.
PLATFORM = "x86_64-manylinux_2_28"


class ResolutionError(ImagekitError):
    """A requirement set could not be resolved (unreachable index, no matching release)."""


def resolve(
    requirements: list[str], *, python: str, index_url: str, constraints: list[str] | None = None, preferences: str | None = None
) -> str:
    """Every package ``requirements`` needs, each pinned with all its sha256 hashes, as the text of a
    requirements file (`pip install --require-hashes -r`). ``index_url`` is a matrix template
    (``${VAR}`` expanded here; credentials never appear in the result or in errors).
    ``preferences``: the set locked before, whose pins uv keeps wherever ``requirements`` allow
    (it reads an existing output file so), as cargo and uv's own lock do: a changed pin moves
    that package and what it alone needs, not every other pin to today's release."""
    url = expand(index_url)
    shown = public_url(url) or url
    with tempfile.TemporaryDirectory(prefix="imagekit-lock-") as tmp:
        # Relative names, so uv's "# via -r requirements.in" comments do not depend on the temp path.
        (Path(tmp) / "requirements.in").write_text("".join(f"{r}\n" for r in requirements))
        argv = [find_uv_bin(), "pip", "compile", "requirements.in", "--output-file", "requirements.txt",
                "--python-version", python, "--python-platform", PLATFORM, "--generate-hashes",
                "--index-url", url, "--no-header", "--no-config", "--quiet"]  # fmt: skip
        if constraints:
            (Path(tmp) / "constraints.txt").write_text("".join(f"{c}\n" for c in constraints))
            argv += ["--constraint", "constraints.txt"]
        if preferences:
            (Path(tmp) / "requirements.txt").write_text(preferences)
        env = dict(os.environ)
        ca = ca_bundle()
        if ca:
            env["SSL_CERT_FILE"] = str(ca)
        try:
            done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            raise ResolutionError(f"resolving against {shown} took over 10 minutes", tip="check that the index answers") from None
        if done.returncode != 0:
            detail = " ".join(done.stderr.replace(url, shown).split())[-600:]
            raise ResolutionError(
                f"cannot resolve {', '.join(requirements)} for Python {python} against {shown}: {detail}",
                tip="if this host cannot reach that index, lock the other images with --only and this one where it can",
            )
        return (Path(tmp) / "requirements.txt").read_text()
