"""The one module that runs cosign: signatures and attestations on image digests, made with the site's
key and checked with its public key (README "Signing and evidence").

Supported: cosign 2.x (Debian trixie's 2.5) and 3.x (sid's 3.1); which one is on PATH is read from
its flags, since Debian's builds report their version as "devel". Both write and read the same
format, cosign's tag-based one (`sha256-<hex>.sig` / `.att` beside the image), so a 2.x verifier
accepts what 3.x signed and the reverse, on every registry (no referrers API needed). 3.x needs
`--new-bundle-format=false --use-signing-config=false` for that, and reads it back with
`--new-bundle-format=false`, which also keeps it from trying bundles it did not write.

No transparency log: nothing is uploaded to Rekor, and verification passes
`--insecure-ignore-tlog`. An air-gapped site has no log to reach; what that trades away (a public,
append-only record of every signature, which shows a stolen key's use) is in the README.

The key's password reaches cosign as COSIGN_PASSWORD in its environment only; registry credentials
from IMAGEKIT_REGISTRY_USER/PASSWORD go in a Docker config of the call's own (a private temporary
folder); neither is ever on a command line, in a log or in what this module returns.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imagekit.errors import ConfigurationError, SigningError

KMS = re.compile(r"(awskms|gcpkms|azurekms|hashivault|k8s|pkcs11):/{0,2}[^\s]{1,500}")
# A key held in an environment variable (a CI secret), which cosign reads itself: `env://NAME`.
ENV_KEY = re.compile(r"env://([A-Z_][A-Z0-9_]{0,63})")
TIMEOUT_S = 300
_HIDDEN = ("COSIGN_", "SIGSTORE_", "IMAGEKIT_")
TIP_INSTALL = "install cosign 2.x or 3.x (Debian: `apt-get install cosign` from trixie or later) or point IMAGEKIT_COSIGN at one"


@dataclass(frozen=True)
class RegistryAccess:
    """How cosign reaches one registry, as Docker on this host does (adapters/registry.py decides)."""

    insecure: bool = False  # plain HTTP or unverified TLS, as the engine treats the host
    cacert: Path | None = None  # /etc/docker/certs.d/<host>/ca.crt
    credentials: tuple[str, str] | None = None  # IMAGEKIT_REGISTRY_USER/PASSWORD; None: Docker's own config


@dataclass(frozen=True)
class SigningKey:
    """A private key cosign signs with: a key file, a KMS URI or `env://NAME`, and the key's
    password; ``material``: the PEM itself (a CI secret), which cosign reads from its environment."""

    ref: str
    password: str = ""
    material: str = ""

    def __repr__(self) -> str:  # never print the password or the key
        return f"SigningKey({self.describe()!r})"

    def describe(self) -> str:
        return "the PEM key in IMAGEKIT_SIGNING_KEY" if self.material else f"key {self.ref[:200]}"


_MATERIAL_VAR = "IMAGEKIT_COSIGN_KEY_MATERIAL"


def signing_key(value: str, password: str) -> SigningKey:
    """IMAGEKIT_SIGNING_KEY's value as a key: the PEM text cosign wrote (how a CI secret arrives),
    else a key reference (`key_reference`)."""
    if value.lstrip().startswith("-----BEGIN") and "PRIVATE KEY-----" in value:
        return SigningKey(f"env://{_MATERIAL_VAR}", password, value)
    return SigningKey(key_reference(value, "IMAGEKIT_SIGNING_KEY"), password)


def key_reference(value: str, variable: str, *, public: bool = False) -> str:
    """A key as given (IMAGEKIT_SIGNING_KEY, --key): a KMS URI passed through, `env://NAME` with
    NAME set (not one of imagekit's own variables, which cosign never sees), or a readable file."""
    if KMS.fullmatch(value):
        return value
    if match := ENV_KEY.fullmatch(value):
        if match.group(1).startswith(_HIDDEN) or not os.environ.get(match.group(1)):
            raise ConfigurationError(
                f"{variable}: {value} names an environment variable that is unset, empty or reserved",
                tip="set that variable to the PEM key under a name not starting with IMAGEKIT_ or COSIGN_, or put the PEM itself in IMAGEKIT_SIGNING_KEY",
            )
        return value
    path = Path(value)
    if not path.is_file():
        what = "public key" if public else "signing key"
        # A private key's variable may hold key material that is not quite a PEM: never echo it.
        shown = f"{value[:120]!r}" if public else f"its value ({len(value)} characters)"
        raise ConfigurationError(
            f"{variable}: {shown} is not a {what} file, a PEM key or a KMS URI",
            tip="name the key file cosign wrote (`cosign generate-key-pair`), or a KMS URI such as awskms:///alias/imagekit",
        )
    return str(path.resolve())


class Cosign:
    """cosign on this host, for one set of registries (``access``: host → how to reach it)."""

    def __init__(self, access: Callable[[str], RegistryAccess], binary: str | None = None) -> None:
        self.binary = binary or os.environ.get("IMAGEKIT_COSIGN") or "cosign"
        self.access = access
        self._generation: int | None = None

    def generation(self) -> int:
        """2 or 3, from the flags `cosign sign` takes; ConfigurationError when cosign is missing or older."""
        if self._generation is None:
            found = shutil.which(self.binary)
            if found is None:
                raise ConfigurationError(f"cosign ({self.binary}) is not installed here", tip=TIP_INSTALL)
            try:
                out = subprocess.run(
                    [found, "sign", "--help"], capture_output=True, encoding="utf-8", errors="replace", timeout=60,
                    stdin=subprocess.DEVNULL, env=_environment(),
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ConfigurationError(f"{self.binary} does not run: {exc}", tip=TIP_INSTALL) from None
            help_text = out.stdout + out.stderr
            if "--tlog-upload" not in help_text:
                raise ConfigurationError(f"{self.binary} is older than cosign 2.0 (no --tlog-upload)", tip=TIP_INSTALL)
            self.binary = found
            self._generation = 3 if "--use-signing-config" in help_text else 2
        return self._generation

    def describe(self) -> str:
        return f"cosign {self.generation()}.x ({self.binary})"

    def _format(self) -> list[str]:
        return ["--new-bundle-format=false"] if self.generation() == 3 else []

    def _writing(self) -> list[str]:
        return [*self._format(), "--use-signing-config=false", "--tlog-upload=false"] if self.generation() == 3 else ["--tlog-upload=false"]

    def sign(self, reference: str, key: SigningKey) -> None:
        self._run(["sign", *self._writing(), "--key", key.ref, "--yes", reference], reference, key)

    def attest(self, reference: str, key: SigningKey, predicate_type: str, predicate: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="imagekit-attest-") as tmp:
            path = Path(tmp) / "predicate.json"
            path.write_bytes(predicate)
            self._run(
                ["attest", *self._writing(), "--key", key.ref, "--type", predicate_type, "--predicate", str(path), "--yes", reference],
                reference,
                key,
            )

    def public_key(self, key: SigningKey) -> bytes:
        """The public half of ``key`` (PEM), as cosign derives it (a key file or a KMS key alike)."""
        return self._run(["public-key", "--key", key.ref], None, key).encode()

    def verify(self, reference: str, public: str) -> str:
        """`cosign verify`'s output for ``reference`` (a JSON list), SigningError when nothing verifies."""
        return self._run(["verify", *self._format(), "--key", public, "--insecure-ignore-tlog", reference], reference, None)

    def verify_attestations(self, reference: str, public: str, predicate_type: str) -> str:
        """`cosign verify-attestation`'s output (a DSSE envelope per line), SigningError when none verifies."""
        argv = ["verify-attestation", *self._format(), "--key", public, "--insecure-ignore-tlog", "--type", predicate_type, reference]
        return self._run(argv, reference, None)

    def _run(self, argv: list[str], reference: str | None, key: SigningKey | None) -> str:
        self.generation()
        with self._registry_flags(reference) as (flags, env):
            env["COSIGN_PASSWORD"] = key.password if key else ""
            if key is not None and key.material:
                env[_MATERIAL_VAR] = key.material
            try:
                # cosign copies registry answers into its errors: decoded leniently, never a traceback.
                out = subprocess.run(
                    [self.binary, argv[0], *flags, *argv[1:]], capture_output=True, encoding="utf-8", errors="replace",
                    timeout=TIMEOUT_S, env=env, stdin=subprocess.DEVNULL,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise SigningError(f"cosign {argv[0]} took over {TIMEOUT_S} s", tip="check that the registry answers") from None
            except OSError as exc:
                raise SigningError(f"cosign {argv[0]} did not run: {exc.strerror}", tip=TIP_INSTALL) from None
        if out.returncode != 0:
            raise SigningError(f"cosign {argv[0]}: {_last_error(out.stderr, key)}")
        return out.stdout

    @contextmanager
    def _registry_flags(self, reference: str | None) -> Iterator[tuple[list[str], dict[str, str]]]:
        env = _environment()
        if reference is None:
            yield [], env
            return
        host = reference.split("/", 1)[0]
        access = self.access(host)
        flags = ["--allow-insecure-registry", "--allow-http-registry"] if access.insecure else []
        if access.cacert is not None:
            flags.append(f"--registry-cacert={access.cacert}")
        if access.credentials is None:
            yield flags, env
            return
        with tempfile.TemporaryDirectory(prefix="imagekit-cosign-") as tmp:
            os.chmod(tmp, 0o700)
            user, password = access.credentials
            auth = base64.b64encode(f"{user}:{password}".encode()).decode()
            config = Path(tmp) / "config.json"
            fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"auths": {host: {"auth": auth}}}, fh)
            yield flags, {**env, "DOCKER_CONFIG": tmp}


def _environment() -> dict[str, str]:
    """cosign's environment: imagekit's own secrets stay here (the key's password goes as
    COSIGN_PASSWORD alone); a COSIGN_* or SIGSTORE_* setting of the host would change what cosign
    does behind our flags."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_HIDDEN)}


def _last_error(stderr: str, key: SigningKey | None) -> str:
    """cosign's own reason, one line, printable, without the password should cosign ever echo it."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    errors = [line for line in lines if line.startswith(("Error:", "error"))] or lines or ["no output"]
    message = errors[0].removeprefix("Error: ")
    if key is not None and key.password:
        message = message.replace(key.password, "***")
    return "".join(c if c.isprintable() else "?" for c in message[:300])


class KeyedSigner:
    """cosign bound to the site's keys: the stages' `Signer` (stages/ports.py). ``key`` None: verify
    only; ``public`` None: the public half of ``key``, derived once into a private temporary file."""

    def __init__(self, cosign: Cosign, key: SigningKey | None, public: str | None) -> None:
        if key is None and public is None:
            raise ConfigurationError("no key to sign or verify with", tip="set IMAGEKIT_SIGNING_KEY, or pass --key with the public key")
        self.cosign, self.key, self._public = cosign, key, public
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def describe(self) -> str:
        return f"{self.cosign.describe()}, {self.key.describe() if self.key else f'public key {self._public}'}"

    def public(self) -> str:
        if self._public is None:
            assert self.key is not None
            self._folder = tempfile.TemporaryDirectory(prefix="imagekit-pub-")
            path = Path(self._folder.name) / "cosign.pub"
            path.write_bytes(self.cosign.public_key(self.key))
            self._public = str(path)
        return self._public

    def _key(self) -> SigningKey:
        if self.key is None:
            raise ConfigurationError("signing needs the private key", tip="set IMAGEKIT_SIGNING_KEY (and IMAGEKIT_SIGNING_PASSWORD)")
        return self.key

    def sign(self, reference: str) -> None:
        self.cosign.sign(reference, self._key())

    def attest(self, reference: str, predicate_type: str, predicate: bytes) -> None:
        self.cosign.attest(reference, self._key(), predicate_type, predicate)

    def verify(self, reference: str) -> str:
        return self.cosign.verify(reference, self.public())

    def verify_attestations(self, reference: str, predicate_type: str) -> str:
        return self.cosign.verify_attestations(reference, self.public(), predicate_type)

    def close(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
