"""The one module that talks to registries over HTTP (the distribution API, v2): manifests, by tag
or digest, read back after a push to prove what the registry holds; small blobs and manifests
written (test evidence attached to a digest); blobs mounted across repositories and manifests copied
(promotion without moving a layer). Pushing images goes through the engine.

Credentials are Docker's: IMAGEKIT_REGISTRY_USER / IMAGEKIT_REGISTRY_PASSWORD when set (CI), else
what `docker login` stored (config file or credential helper). TLS is Docker's too: the system's
CAs plus /etc/docker/certs.d/<host>/ca.crt; and a registry the engine treats as insecure (named in
daemon.json's `insecure-registries`, or an address in its CIDRs, 127.0.0.0/8 by default) is tried
over HTTPS without verification, then over plain HTTP, as `docker push` does (`insecure()`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import docker.auth
import requests
import urllib3

from imagekit.core import grammar
from imagekit.errors import ImagekitError, RegistryError

CERTS_D = Path("/etc/docker/certs.d")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# Docker's own default when the engine's configuration cannot be read (registry/config.go).
DEFAULT_INSECURE_CIDRS = ("127.0.0.0/8", "::1/128")
INSECURE_TIP = (
    'add it to the engine\'s daemon.json ("insecure-registries": ["{host}"]) and restart the engine, '
    "as `docker push` needs too, or serve the registry over TLS"
)
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


def insecure(host: str, engine_info: dict[str, Any] | None) -> bool:
    """Whether Docker on this host talks to ``host`` as an insecure registry: named in the engine's
    `insecure-registries` (its IndexConfigs, Secure false), else whether an address of the host lies
    in the engine's insecure CIDRs (Docker's defaults when the engine is not reachable)."""
    config = (engine_info or {}).get("RegistryConfig") or {}
    indexes = config.get("IndexConfigs") or {}
    if isinstance(indexes.get(host), dict) and "Secure" in indexes[host]:
        return not indexes[host]["Secure"]
    cidrs = config.get("InsecureRegistryCIDRs") if engine_info is not None else DEFAULT_INSECURE_CIDRS
    networks = [ipaddress.ip_network(c, strict=False) for c in cidrs or () if isinstance(c, str)]
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    try:
        addresses = {ipaddress.ip_address(name.strip("[]"))}
    except ValueError:
        try:
            addresses = {ipaddress.ip_address(a[4][0]) for a in socket.getaddrinfo(name, None)}
        except (OSError, ValueError):
            addresses = set()
    return any(a in n for a in addresses for n in networks)


@dataclass(frozen=True)
class RawManifest:
    """A manifest as the registry holds it: its exact bytes (what a copy must put back, so the
    digest stays the same), media type and digest."""

    digest: str
    media_type: str
    body: bytes

    @classmethod
    def of(cls, media_type: str, body: bytes) -> RawManifest:
        return cls(sha256(body), media_type, body)

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise RegistryError(f"the manifest {self.digest} is not a JSON object", transient=False)
        return value


class Registry:
    def __init__(self, host: str, *, environment_credentials: bool = True, insecure: bool = False) -> None:
        self.host = host
        self.insecure = insecure
        self._session = requests.Session()
        self._creds = credentials(host, environment=environment_credentials)
        ca = CERTS_D / host / "ca.crt"
        # An insecure registry that speaks TLS: Docker skips verification; here its CA is still used
        # when certs.d has one (the registry is then checked, as it can be), else none.
        self._verify: str | bool = str(ca) if ca.is_file() else not insecure
        self._token: str | None = None
        self._basic = False  # the registry asked for Basic credentials
        self._scheme = "https"
        self.moved = 0  # bytes sent and received, bodies only: what a promotion costs on the wire

    def close(self) -> None:
        self._session.close()

    def _get(self, path: str, headers: dict[str, str]) -> requests.Response:
        return self._request("GET", path, headers)

    def _request(
        self, method: str, path: str, headers: dict[str, str], *, data: bytes | None = None, params: dict[str, str] | None = None
    ) -> requests.Response:
        try:
            response = self._send(method, path, headers, data, params)
            if response.status_code == 401:
                self._authenticate(response)
                response = self._send(method, path, headers, data, params)
        except requests.exceptions.SSLError as exc:
            if "WRONG_VERSION_NUMBER" in str(exc) or "wrong version number" in str(exc):
                raise RegistryError(
                    f"{self.host} speaks plain HTTP, and Docker on this host treats it as a TLS registry", transient=False,
                    tip=INSECURE_TIP.format(host=self.host),
                ) from None  # fmt: skip
            raise RegistryError(f"TLS to {self.host} failed: {exc}", transient=False,
                                tip=f"put the registry's CA in {CERTS_D / self.host / 'ca.crt'}") from None  # fmt: skip
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"cannot reach {self.host}: {type(exc).__name__}", transient=True) from None
        self.moved += len(data or b"") + len(response.content)
        if response.status_code >= 500:
            raise RegistryError(f"{self.host} answered {response.status_code} for {path}", transient=True)
        if response.status_code in (401, 403):
            raise RegistryError(f"{self.host} refused {method} {path} ({response.status_code})", transient=False,
                                tip="log in with `docker login` or set IMAGEKIT_REGISTRY_USER and IMAGEKIT_REGISTRY_PASSWORD")  # fmt: skip
        return response

    def _send(
        self, method: str, path: str, headers: dict[str, str], data: bytes | None, params: dict[str, str] | None
    ) -> requests.Response:
        """One request; an insecure registry that does not answer HTTPS is asked again over HTTP, and
        stays on HTTP for this client."""
        url = path if path.startswith(("https://", "http://")) else f"{self._scheme}://{self.host}/v2/{path}"
        if urlsplit(url).netloc != self.host:  # an upload Location elsewhere: our credentials stay with this registry
            raise RegistryError(f"{self.host} sent an address on another host ({_printable(urlsplit(url).netloc[:80])})", transient=False)
        # Credentials only after the registry asked for them (as Docker does): Basic after a Basic
        # challenge, a token after a Bearer one.
        auth = self._creds if self._basic and not self._token else None
        if self._token:
            headers = {**headers, "Authorization": f"Bearer {self._token}"}
        try:
            with warnings.catch_warnings():
                # Unverified only where the engine treats the registry as insecure: said once in the README, not per request.
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                return self._session.request(method, url, headers=headers, data=data, params=params, auth=auth,
                                             verify=self._verify, timeout=60, allow_redirects=method == "GET")  # fmt: skip
        except (requests.exceptions.SSLError, requests.exceptions.ConnectionError):
            if not (self.insecure and self._scheme == "https" and url.startswith("https://")):
                raise
            self._scheme = "http"
            url = "http://" + url.removeprefix("https://")
            return self._session.request(method, url, headers=headers, data=data, params=params, auth=auth,
                                         timeout=60, allow_redirects=method == "GET")  # fmt: skip

    def _authenticate(self, challenge: requests.Response) -> None:
        """Bearer-token registries (Harbor, GitLab, Docker Hub): fetch a token with our credentials."""
        header = challenge.headers.get("WWW-Authenticate", "")
        if not header.lower().startswith("bearer"):
            self._basic = True  # Basic (or unnamed): send the credentials with the next request
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', header))
        realm = params.pop("realm", "")
        # The registry names the realm: credentials go over TLS, or over HTTP only to a registry the
        # engine was told is insecure (as Docker sends them there).
        if not (realm.startswith("https://") or (self.insecure and realm.startswith("http://"))):
            raise RegistryError(f"{self.host} asks for a token from {realm[:80]!r}, which is not https", transient=False)
        response = self._session.get(realm, params=params, auth=self._creds, verify=self._verify, timeout=60)
        self.moved += len(response.content)
        if response.ok:
            try:
                body = response.json()
            except ValueError:
                body = None
            token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
            if not isinstance(token, str) or not token.isprintable():
                raise RegistryError(f"{self.host}'s token service answered without a token", transient=False)
            self._token = token

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest of ``repository:reference`` (a tag or a digest), or None if there is none."""
        response = self._manifest_response(repository, reference)
        if response is None:
            return None
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

    def _manifest_response(self, repository: str, reference: str) -> requests.Response | None:
        """The registry's answer for the manifest ``repository:reference``; None when it has none."""
        response = self._get(f"{repository}/manifests/{reference}", {"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        if not response.ok:
            raise RegistryError(f"{self.host} answered {response.status_code} for {repository}:{reference}", transient=False)
        return response

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

    def raw_manifest(self, repository: str, reference: str) -> RawManifest | None:
        """The manifest of ``repository:reference`` as stored (exact bytes), or None if there is none."""
        response = self._manifest_response(repository, reference)
        if response is None:
            return None
        digest = sha256(response.content)
        said = response.headers.get("Docker-Content-Digest")
        if said and said != digest:  # held to the bytes: a copy puts back exactly what was read
            raise RegistryError(
                f"{self.host} sent {repository}:{reference} with digest {_printable(said[:19])}, but its bytes are {digest[:19]}",
                transient=False,
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()[:200]
        return RawManifest(digest, media_type, response.content)

    def put_manifest(self, repository: str, reference: str, manifest: RawManifest) -> str:
        """Store ``manifest`` under ``reference`` (a tag, or its own digest); the digest the registry gave it."""
        response = self._request("PUT", f"{repository}/manifests/{reference}", {"Content-Type": manifest.media_type}, data=manifest.body)
        if response.status_code != 201:
            raise RegistryError(
                f"{self.host} refused the manifest {repository}:{reference} ({response.status_code}: {_said(response)})", transient=False
            )
        digest = response.headers.get("Docker-Content-Digest") or manifest.digest
        if digest != manifest.digest:
            raise RegistryError(
                f"{self.host} stored {repository}:{reference} as {digest[:19]}, not {manifest.digest[:19]}", transient=False
            )
        return digest

    def blob(self, repository: str, digest: str, *, limit: int = 16 * 2**20) -> bytes:
        """A small blob's bytes (a result record, a JUnit report), held to its digest and ``limit``."""
        response = self._get(f"{repository}/blobs/{digest}", {})
        if not response.ok:
            raise RegistryError(f"{self.host} answered {response.status_code} for the blob {digest[:19]} of {repository}", transient=False)
        if len(response.content) > limit or sha256(response.content) != digest:
            raise RegistryError(
                f"{self.host} sent the blob {digest[:19]} of {repository} with other bytes or over {limit} bytes", transient=False
            )
        return response.content

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self._request("HEAD", f"{repository}/blobs/{digest}", {})
        return response.status_code == 200

    def put_blob(self, repository: str, data: bytes) -> str:
        """Upload a small blob (a result record, a JUnit report) in one request; its digest."""
        digest = sha256(data)
        if self.has_blob(repository, digest):
            return digest
        started = self._request("POST", f"{repository}/blobs/uploads/", {})
        location = started.headers.get("Location", "")
        if started.status_code != 202 or not location:
            raise RegistryError(f"{self.host} would not start an upload to {repository} ({started.status_code})", transient=False)
        url = location if location.startswith(("http://", "https://")) else f"{self._scheme}://{self.host}{location}"
        separator = "&" if "?" in url else "?"
        done = self._request("PUT", f"{url}{separator}digest={digest}", {"Content-Type": "application/octet-stream"}, data=data)
        if done.status_code != 201:
            raise RegistryError(f"{self.host} refused a blob upload to {repository} ({done.status_code}: {_said(done)})", transient=False)
        return digest

    def mount_blob(self, repository: str, digest: str, source: str) -> None:
        """Make blob ``digest`` of ``source`` part of ``repository`` without sending it (a cross-
        repository mount). A registry that starts an upload instead is refused: the point is that no
        layer passes through this host."""
        response = self._request("POST", f"{repository}/blobs/uploads/", {}, params={"mount": digest, "from": source})
        if response.status_code == 201:
            return
        if response.status_code == 202 and response.headers.get("Location"):
            location = response.headers["Location"]
            url = location if location.startswith(("http://", "https://")) else f"{self._scheme}://{self.host}{location}"
            self._request("DELETE", url, {})
        raise RegistryError(
            f"{self.host} did not mount {digest[:19]} from {source} into {repository} ({response.status_code})",
            transient=False,
            tip="promotion copies within one registry, by cross-repository mounts: keep the staging and release repositories on the same registry and let the credentials read the staging one",
        )


def sha256(data: bytes) -> str:
    """The OCI digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _said(response: requests.Response) -> str:
    """The registry's error text, cut and made printable (it is the registry's, not ours)."""
    return _printable(response.text[:200])


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)
