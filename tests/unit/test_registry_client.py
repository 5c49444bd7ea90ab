"""The registry client (adapters/registry.py) against canned answers: a registry is another party, and
what it sends is input like any other. Served by a requests transport adapter in this process: no
network, no process; the client's own parsing and authentication code runs as it does for real."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import requests.adapters

from imagekit.adapters.registry import Registry
from imagekit.errors import RegistryError
from imagekit.stages.inspect import registry_layers

HOST = "registry.example"
D = "sha256:" + "d" * 64
CONFIG = "sha256:" + "c" * 64


class Canned(requests.adapters.BaseAdapter):
    """Answers GET path → (status, headers, body); records every request it was sent. ``basic``:
    a request without credentials gets a Basic challenge first, as distribution with htpasswd answers."""

    def __init__(self, answers: dict[str, tuple[int, dict[str, str], Any]], basic: bool = False) -> None:
        super().__init__()
        self.answers, self.sent, self.basic = answers, [], basic

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        status, headers, body = self.answers.get(request.path_url, (404, {}, b""))
        if self.basic and "Authorization" not in request.headers:
            status, headers, body = 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        response = requests.Response()
        response.status_code, response.url, response.request = status, request.url, request
        response.headers.update(headers)
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return response

    def close(self) -> None:
        pass


def client(answers: dict[str, tuple[int, dict[str, str], Any]], basic: bool = False, **kwargs: Any) -> tuple[Registry, Canned]:
    registry = Registry(HOST, **kwargs)
    canned = Canned(answers, basic)
    registry._session.mount("https://", canned)
    return registry, canned


def manifest(body: Any) -> dict[str, tuple[int, dict[str, str], Any]]:
    return {"/v2/ml/x/manifests/t": (200, {"Docker-Content-Digest": D}, body)}


GOOD = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"digest": CONFIG, "size": 100, "mediaType": "application/vnd.oci.image.config.v1+json"},
    "layers": [{"digest": D, "size": 5_000, "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd"}],
}


def test_a_manifest_and_its_config_give_the_layers_with_their_blobs_and_sizes():
    answers = manifest(GOOD) | {
        f"/v2/ml/x/blobs/{CONFIG}": (
            200,
            {},
            {"rootfs": {"diff_ids": ["sha256:" + "e" * 64]}, "history": [{"created_by": "RUN \x1b[31mx"}]},
        )
    }
    registry, _ = client(answers)
    found = registry_layers(registry, f"{HOST}/ml/x:t")
    assert found.in_registry and [(x.diff_id, x.blob, x.size) for x in found.layers] == [("sha256:" + "e" * 64, D, 5_000)]
    assert found.layers[0].created_by == "RUN [31mx", "what a registry says is shown without its control characters"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>gateway</html>", "as something other than a JSON object"),
        ([1], "as something other than a JSON object"),
        ({**GOOD, "layers": ["x"]}, "without a config and a list of layers"),
        ({**GOOD, "layers": [{"digest": D, "size": None}]}, "not sha256 digests with sizes"),
        ({**GOOD, "config": {"digest": "../../etc", "size": 1}}, "not sha256 digests with sizes"),
        ({"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}, "is a multi-platform index, not one image"),
    ],
)
def test_what_is_not_one_image_manifest_is_refused_with_a_message_not_a_traceback(body, message):
    registry, _ = client(manifest(body))
    with pytest.raises(RegistryError, match=message):
        registry.manifest("ml/x", "t")


def test_a_config_that_does_not_match_its_manifest_is_refused():
    answers = manifest(GOOD) | {f"/v2/ml/x/blobs/{CONFIG}": (200, {}, {"rootfs": {"diff_ids": "sha256:x"}, "history": 5})}
    registry, _ = client(answers)
    with pytest.raises(Exception, match="does not list one diff_id per layer") as info:
        registry_layers(registry, f"{HOST}/ml/x:t")
    assert info.value.return_code == 1  # type: ignore[attr-defined]


def test_the_ci_credentials_go_only_where_they_are_meant_to(monkeypatch):
    monkeypatch.setenv("IMAGEKIT_REGISTRY_USER", "ci")
    monkeypatch.setenv("IMAGEKIT_REGISTRY_PASSWORD", "ci-secret")
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent")  # no `docker login` either
    named, canned = client(manifest(GOOD), environment_credentials=False)
    named.manifest("ml/x", "t")
    assert "Authorization" not in canned.sent[0].headers, "a host named on a command line never gets the CI's secrets"
    publishing, canned = client(manifest(GOOD), basic=True)
    publishing.manifest("ml/x", "t")
    assert "Authorization" not in canned.sent[0].headers, "credentials only once the registry asks for them"
    assert canned.sent[1].headers["Authorization"].startswith("Basic "), "the registry publish pushes to gets them"
    # An address on another host (an upload Location) gets nothing: the request is refused.
    with pytest.raises(RegistryError, match="an address on another host"):
        publishing._request("PUT", "https://elsewhere.example/v2/ml/x/blobs/uploads/1?digest=x", {}, data=b"x")
    assert all(r.url.startswith(f"https://{HOST}/") for r in canned.sent)
    # A token realm the registry names over plain HTTP gets no credentials.
    challenge = {"/v2/ml/x/manifests/t": (401, {"WWW-Authenticate": 'Bearer realm="http://evil.example/token",service="r"'}, b"")}
    bearer, canned = client(challenge)
    with pytest.raises(RegistryError, match="which is not https"):
        bearer.manifest("ml/x", "t")
    assert [r.url for r in canned.sent] == [f"https://{HOST}/v2/ml/x/manifests/t"], "nothing went to the realm"
