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
from typing import Any, Literal

import docker.auth
import requests

from imagekit.core import grammar
from imagekit.errors import ImagekitError, RegistryError

CERTS_D = Path("/etc/docker/certs.d")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
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
    of: Literal["config", "manifest"]

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


def credentials(host: str, *, environment: bool = True) -> tuple[str, str] | None:
    """What authenticates to ``host``: IMAGEKIT_REGISTRY_USER/_PASSWORD (the CI's secrets for the
    registry it publishes to) when ``environment``, else or failing that what `docker login` stored
    for that very host. A host named only on a command line gets the latter alone."""
    user, password = os.environ.get("IMAGEKIT_REGISTRY_USER"), os.environ.get("IMAGEKIT_REGISTRY_PASSWORD")
    if environment and user and password:
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
    def __init__(self, host: str, *, environment_credentials: bool = True) -> None:
        self.host = host
        self._session = requests.Session()
        self._creds = credentials(host, environment=environment_credentials)
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
        if not realm.startswith("https://"):  # the registry names the realm: credentials go over TLS or not at all
            raise RegistryError(f"{self.host} asks for a token from {realm[:80]!r}, which is not https", transient=False)
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
        where = f"{repository}:{reference}"
        body = self._json(response, where)
        digest = response.headers.get("Docker-Content-Digest") or ""
        if not grammar.full(grammar.DIGEST, digest):
            raise RegistryError(f"{self.host} sent no Docker-Content-Digest for {where}", transient=False)
        if body.get("mediaType") in INDEX_TYPES:
            raise RegistryError(
                f"{self.host}/{where} is a multi-platform index, not one image",
                transient=False,
                tip="name one platform's manifest by its digest (name@sha256:…)",
            )
        config, layers = body.get("config"), body.get("layers")
        if not isinstance(config, dict) or not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
            raise RegistryError(f"{self.host} sent a manifest for {where} without a config and a list of layers", transient=False)
        blobs = [(layer.get("digest"), layer.get("size"), str(layer.get("mediaType", ""))[:200]) for layer in [config, *layers]]
        if not all(isinstance(d, str) and grammar.full(grammar.DIGEST, d) and type(s) is int and s >= 0 for d, s, _ in blobs):
            raise RegistryError(f"{self.host} sent a manifest for {where} whose blobs are not sha256 digests with sizes", transient=False)
        return Manifest(
            digest, str(config["digest"]), sum(int(s) for _, s, _ in blobs), tuple((str(d), int(s), t) for d, s, t in blobs[1:])
        )

    def _json(self, response: requests.Response, where: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:  # not JSON, or not UTF-8
            body = None
        if not isinstance(body, dict):
            raise RegistryError(f"{self.host} sent {where} as something other than a JSON object", transient=False)
        return body

    def config(self, repository: str, digest: str) -> dict[str, Any]:
        """The image config blob ``digest`` of ``repository`` (its rootfs diff_ids and history)."""
        response = self._get(f"{repository}/blobs/{digest}", {})
        if not response.ok:
            raise RegistryError(f"{self.host} answered {response.status_code} for the config {digest} of {repository}", transient=False)
        return self._json(response, f"the config {digest} of {repository}")
