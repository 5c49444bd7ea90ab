"""The host's pip settings a build needs, handed to BuildKit as secret files.

Index URLs may carry credentials (`https://${IMAGEKIT_INDEX_USER}:${IMAGEKIT_INDEX_TOKEN}@mirror/simple`), and a
corporate proxy needs its CA bundle; both reach pip inside the build as `--secret` files mounted
for one RUN, so they never land in a layer, the history, a label or a build arg.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagekit.errors import ConfigurationError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# BuildKit secret ids (names, not secret values)
CA_SECRET = "pip-ca.pem"  # noqa: S105
CONF_SECRET = "pip.conf"  # noqa: S105


def expand(template: str) -> str:
    """`${VAR}` and `${VAR:-default}` from the environment; an unset VAR without default is an error."""

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        raise ConfigurationError(
            f"index URL {template!r} needs the environment variable {name}, which is not set",
            tip=f"export {name}=… before running imagekit, or give a default: ${{{name}:-https://pypi.org/simple}}",
        )

    return _VAR.sub(sub, template)


def ca_bundle() -> Path | None:
    """The CA bundle pip on this host uses (PIP_CERT, else SSL_CERT_FILE), if any."""
    for var in ("PIP_CERT", "SSL_CERT_FILE"):
        value = os.environ.get(var)
        if value:
            path = Path(value)
            if not path.is_file():
                raise ConfigurationError(f"{var}={value} does not name a file", tip=f"unset {var} or point it at a CA bundle")
            return path
    return None


@contextmanager
def pip_secrets(index_templates: set[str]) -> Iterator[dict[str, dict[str, Path]]]:
    """For each index URL template, the `--secret` files a build passes: id → host path.
    The files live in a private temporary folder removed afterwards."""
    resolved = {t: expand(t) for t in sorted(index_templates)}  # fail before anything is built
    ca = ca_bundle()
    with tempfile.TemporaryDirectory(prefix="imagekit-pip-") as tmp:
        os.chmod(tmp, 0o700)
        secrets: dict[str, dict[str, Path]] = {}
        for n, (template, url) in enumerate(resolved.items()):
            conf = Path(tmp) / f"pip-{n}.conf"
            lines = ["[global]", f"index-url = {url}", "no-input = true", "disable-pip-version-check = true"]
            if ca is not None:
                lines.append(f"cert = /run/secrets/{CA_SECRET}")
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("\n".join(lines) + "\n")
            secrets[template] = {CONF_SECRET: conf, **({CA_SECRET: ca} if ca is not None else {})}
        yield secrets
