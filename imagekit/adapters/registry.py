"""The one module that talks to registries over HTTP (the distribution API, v2): manifests, by tag
or digest, read back after a push to prove what the registry holds. Pushing itself goes through the engine.

Credentials are Docker's: IMAGEKIT_REGISTRY_USER / IMAGEKIT_REGISTRY_PASSWORD when set (CI), else
what `docker login` stored (config file or credential helper). TLS trust is Docker's too: the
system's CAs plus /etc/docker/certs.d/<host>/ca.crt.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.auth
import requests

from imagekit.errors import ImagekitError, RegistryError

CERTS_D = Path("/etc/docker/certs.d")
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


@dataclass(frozen=True)
class Manifest:
    digest: str  # the manifest's digest: what `repo@sha256:…` pulls; the image id on a containerd-store engine
    config_digest: str  # the image id on a classic-store engine
    size: int  # config + compressed layers, bytes
    layers: tuple[tuple[str, int, str], ...] = ()  # (blob digest, compressed bytes, media type), base first


@dataclass(frozen=True)
class ImageKey:
    """A local image id and what it is the digest of: the image's config on the classic store, its
    manifest on the containerd store (docker_engine.py). imagekit builds single-platform images without
    attestations, so a pushed image is one manifest, never an index."""

    digest: str
    of: str  # config | manifest

    def served_by(self, manifest: Manifest | None) -> bool:
        """Whether a registry's ``manifest`` is this very image."""
        if manifest is None:
            return False
        return (manifest.config_digest if self.of == "config" else manifest.digest) == self.digest


def split_reference(reference: str) -> tuple[str, str]:
    """`host:5000/ml/pytorch` → (`host:5000`, `ml/pytorch`)."""
    host, _, path = reference.partition("/")
    if not path or not ("." in host or ":" in host or host == "localhost"):
        raise ImagekitError(f"'{reference}' does not start with a registry host", tip="write registry: host[:port]/path")
    return host, path


def split_image_reference(reference: str) -> tuple[str, str, str]:
    """`host:5000/ml/pytorch:tag` → (`host:5000`, `ml/pytorch`, `tag`); a digest (`…@sha256:…`) is
    the reference when given, and `latest` when neither is."""
    name, _, digest = reference.partition("@")
    host, path = split_reference(name)
    last = path.rsplit("/", 1)[-1]
    path, tag = path.rsplit(":", 1) if ":" in last else (path, "latest")
    return host, path, digest or tag


def credentials(host: str) -> tuple[str, str] | None:
    user, password = os.environ.get("IMAGEKIT_REGISTRY_USER"), os.environ.get("IMAGEKIT_REGISTRY_PASSWORD")
    if user and password:
        return user, password
    found = docker.auth.load_config().resolve_authconfig(host) or {}
    if found.get("username") and found.get("password"):
        return found["username"], found["password"]
    return None


def auth_config(host: str) -> dict[str, str] | None:
    """Credentials in the form the engine's push takes (None: let the engine use its own)."""
    creds = credentials(host)
    return {"username": creds[0], "password": creds[1]} if creds else None


class Registry:
    def __init__(self, host: str) -> None:
        self.host = host
        self._session = requests.Session()
        self._creds = credentials(host)
        ca = CERTS_D / host / "ca.crt"
        self._verify: str | bool = str(ca) if ca.is_file() else True
        self._token: str | None = None

    def close(self) -> None:
        self._session.close()

    def _get(self, path: str, headers: dict[str, str]) -> requests.Response:
        url = f"https://{self.host}/v2/{path}"
        try:
            response = self._send(url, headers)
            if response.status_code == 401:
                self._authenticate(response)
                response = self._send(url, headers)
        except requests.exceptions.SSLError as exc:
            raise RegistryError(f"TLS to {self.host} failed: {exc}", transient=False,
                                tip=f"put the registry's CA in {CERTS_D / self.host / 'ca.crt'}") from None  # fmt: skip
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"cannot reach {self.host}: {type(exc).__name__}", transient=True) from None
        if response.status_code >= 500:
            raise RegistryError(f"{self.host} answered {response.status_code} for {path}", transient=True)
        if response.status_code in (401, 403):
            raise RegistryError(f"{self.host} refused {path} ({response.status_code})", transient=False,
                                tip="log in with `docker login` or set IMAGEKIT_REGISTRY_USER and IMAGEKIT_REGISTRY_PASSWORD")  # fmt: skip
        return response

    def _send(self, url: str, headers: dict[str, str]) -> requests.Response:
        if self._token:
            headers = {**headers, "Authorization": f"Bearer {self._token}"}
            return self._session.get(url, headers=headers, verify=self._verify, timeout=60)
        return self._session.get(url, headers=headers, auth=self._creds, verify=self._verify, timeout=60)

    def _authenticate(self, challenge: requests.Response) -> None:
        """Bearer-token registries (Harbor, GitLab, Docker Hub): fetch a token with our credentials."""
        header = challenge.headers.get("WWW-Authenticate", "")
        if not header.lower().startswith("bearer"):
            return  # Basic: the credentials were already sent
        params = dict(re.findall(r'(\w+)="([^"]*)"', header))
        realm = params.pop("realm", "")
        response = self._session.get(realm, params=params, auth=self._creds, verify=self._verify, timeout=60)
        if response.ok:
            body = response.json()
            self._token = body.get("token") or body.get("access_token")

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest of ``repository:reference`` (a tag or a digest), or None if there is none."""
        response = self._get(f"{repository}/manifests/{reference}", {"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        if not response.ok:
            raise RegistryError(f"{self.host} answered {response.status_code} for {repository}:{reference}", transient=False)
        body: dict[str, Any] = response.json()
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            raise RegistryError(f"{self.host} sent no Docker-Content-Digest for {repository}:{reference}", transient=False)
        config = body.get("config") or {}
        layers = tuple(
            (str(layer.get("digest", "")), int(layer.get("size", 0)), str(layer.get("mediaType", ""))) for layer in body.get("layers", [])
        )
        size = int(config.get("size", 0)) + sum(size for _, size, _ in layers)
        return Manifest(digest=digest, config_digest=config.get("digest", ""), size=size, layers=layers)

    def config(self, repository: str, digest: str) -> dict[str, Any]:
        """The image config blob ``digest`` of ``repository`` (its rootfs diff_ids and history)."""
        response = self._get(f"{repository}/blobs/{digest}", {})
        if not response.ok:
            raise RegistryError(f"{self.host} answered {response.status_code} for the config {digest} of {repository}", transient=False)
        body = response.json()
        if not isinstance(body, dict):
            raise RegistryError(f"{self.host} sent a config for {repository} that is not a JSON object", transient=False)
        return body
