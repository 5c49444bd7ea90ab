"""A real registry for the tests: Debian's docker-registry (CNCF distribution) on loopback, with
htpasswd authentication and TLS from a CA made here. Docker trusts it through
/etc/docker/certs.d/<host>/ca.crt, as it would a site registry. Stop and start keep its storage."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker.errors
import requests

from imagekit.adapters.docker_engine import Engine

CERTS_D = Path("/etc/docker/certs.d")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRegistry:
    def __init__(self, folder: Path, user: str, password: str) -> None:
        self.folder, self.user, self.password = folder, user, password
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self._make_tls()
        htpasswd = subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True).stdout
        (folder / "htpasswd").write_text(htpasswd)
        (folder / "config.yml").write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '{self.host}', tls: {{certificate: {folder / 'server.crt'}, key: {folder / 'server.key'}}}}}\n"
            f"auth: {{htpasswd: {{realm: imagekit-tests, path: {folder / 'htpasswd'}}}}}\n"
        )
        self.trust_dir = CERTS_D / self.host
        self.trust_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / "ca.crt", self.trust_dir / "ca.crt")

    def _make_tls(self) -> None:
        f = self.folder

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=imagekit test CA",
                "-keyout", str(f / "ca.key"), "-out", str(f / "ca.crt"))  # fmt: skip
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(f / "server.key"),
            "-out",
            str(f / "server.csr"),
        )
        (f / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", str(f / "server.csr"), "-CA", str(f / "ca.crt"), "-CAkey", str(f / "ca.key"),
                "-CAcreateserial", "-days", "2", "-extfile", str(f / "san.ext"), "-out", str(f / "server.crt"))  # fmt: skip

    def start(self) -> None:
        with (self.folder / "registry.log").open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(["docker-registry", "serve", str(self.folder / "config.yml")], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"https://{self.host}/v2/", verify=str(self.folder / "ca.crt"), timeout=2)
                return
            except requests.exceptions.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"registry did not start; see {self.folder / 'registry.log'}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def tags(self, repository: str) -> list[str]:
        r = requests.get(f"https://{self.host}/v2/{repository}/tags/list", auth=(self.user, self.password),
                         verify=str(self.folder / "ca.crt"), timeout=10)  # fmt: skip
        return sorted(r.json().get("tags") or []) if r.ok else []

    def close(self) -> None:
        """Stop, remove the trust, and drop the stored blobs (gigabytes of torch layers); the
        configuration and registry.log stay for a failure's post-mortem."""
        self.stop()
        shutil.rmtree(self.trust_dir, ignore_errors=True)
        shutil.rmtree(self.folder / "data", ignore_errors=True)


@contextmanager
def serving(engine: Engine, folder: Path, user: str, password: str) -> Iterator[LocalRegistry]:
    """A started registry; afterwards stopped, its trust removed, and every tag the engine holds
    for it untagged (the images themselves belong to the tests' workspaces)."""
    registry = LocalRegistry(folder, user, password)
    registry.start()
    try:
        yield registry
    finally:
        registry.close()
        for image in engine.client.images.list():
            for tag in image.tags:
                if tag.startswith(f"{registry.host}/"):
                    # On the containerd store an image pulled by digest is also listed as `name@sha256:…`,
                    # which goes with its last tag: gone already is fine.
                    try:
                        engine.client.images.remove(tag)
                    except docker.errors.ImageNotFound:
                        pass
