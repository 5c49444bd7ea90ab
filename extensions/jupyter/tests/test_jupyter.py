"""The jupyter extension's own promises, run inside the image after its parent's smoke suite: the
server starts clean, serves nothing without its token, answers with it, runs a kernel with the
image's torch and torchaudio, runs as the image's non-root user, and makes a token of its own per
start that it prints once. (tests/integration/test_jupyter_browser.py drives the image from a real
browser, as `docker run` starts it.)"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Lines the server logs at WARNING or worse ([W], [E], [C]) and what Python prints on a crash.
BAD_LINE = re.compile(r"^\[(W|E|C) |WARNING|ERROR|CRITICAL|Traceback", re.MULTILINE)
STARTED = 120.0  # seconds; a first start imports jupyterlab's extensions


@dataclass
class Server:
    url: str
    token: str | None  # what JUPYTER_TOKEN gave it; None: it made its own
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a GET, redirects not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _call(method: str, url: str, token: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"token {token}", "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def _start(tmp: Path, name: str, env: dict[str, str], args: tuple[str, ...] = ()) -> Server:
    port = _free_port()
    log = tmp / f"{name}.log"
    environment = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"} | {"JUPYTER_PORT": str(port)} | env
    with log.open("wb") as out:
        proc = subprocess.Popen(["start-jupyter", *args], env=environment, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", env.get("JUPYTER_TOKEN"), proc, log)
    deadline = time.monotonic() + STARTED
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"start-jupyter exited with {proc.returncode}:\n{server.text()}")
        try:
            if _get(f"{server.url}/api")[0] == 200 and "is running at" in server.text():
                return server
        except OSError:
            pass
        time.sleep(0.5)
    _stop(server)
    pytest.fail(f"JupyterLab did not answer on {server.url} within {STARTED:.0f} s:\n{server.text()}")


def _stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """The server as a user starts it with a token of their own; and its log as it was once it
    answered, before the tests below make it log their refused requests (4xx are WARNING lines)."""
    started = _start(tmp_path_factory.mktemp("jupyter"), "given-token", {"JUPYTER_TOKEN": secrets.token_hex(24)})
    startup = started.text()
    yield started, startup
    _stop(started)


def test_the_server_starts_without_warnings_or_errors(server):
    _, startup = server
    assert "Jupyter Server" in startup and "is running at" in startup, startup
    assert not BAD_LINE.findall(startup), startup


def test_nothing_is_served_without_the_token(server):
    running, _ = server
    for path in ("/api/contents", "/api/kernels", "/api/sessions", "/api/status", "/api/contents?token=wrong"):
        assert _get(running.url + path)[0] == 403, path
    assert _get(running.url + "/api/contents", token="wrong")[0] == 403
    status, headers, _ = _get(running.url + "/lab")
    assert status == 302 and headers["Location"].startswith("/login"), (status, headers)


def test_the_api_answers_with_the_token(server):
    running, _ = server
    status, _, body = _get(running.url + "/api/status", running.token)
    assert status == 200 and "started" in json.loads(body)
    listing = _call("GET", running.url + "/api/contents", running.token)
    assert isinstance(listing, dict) and listing["path"] == ""


def test_notebooks_are_saved_in_the_data_volume(server):
    running, _ = server
    name = f"saved-{uuid.uuid4().hex[:8]}.ipynb"
    notebook = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    _call("PUT", f"{running.url}/api/contents/{name}", running.token, {"type": "notebook", "content": notebook})
    assert (Path("/data") / name).is_file()
    _call("DELETE", f"{running.url}/api/contents/{name}", running.token)


async def _execute(server: Server, kernel: str, code: str) -> dict[str, str]:
    """Run ``code`` on the kernel over the server's websocket, as JupyterLab does."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    session = uuid.uuid4().hex
    url = f"{server.url.replace('http', 'ws', 1)}/api/kernels/{kernel}/channels?session_id={session}"
    conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {server.token}"}))
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "session": session, "username": "smoke", "date": "", "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
    conn.write_message(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "channel": "shell", "content": content}))
    out = {"stream": "", "error": "", "reply": ""}
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), timeout=STARTED)
            assert raw is not None, f"the kernel's websocket closed: {out}"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, body = msg["msg_type"], msg["content"]
            if kind == "stream":
                out["stream"] += body["text"]
            elif kind == "error":
                out["error"] = f"{body['ename']}: {body['evalue']}"
            elif kind == "execute_reply":
                out["reply"] = body["status"]
            elif kind == "status" and body["execution_state"] == "idle" and out["reply"]:
                return out
    finally:
        conn.close()


def test_a_kernel_runs_the_images_torch_and_torchaudio(server):
    running, _ = server
    kernel = _call("POST", running.url + "/api/kernels", running.token, {"name": "python3"})
    assert isinstance(kernel, dict)
    try:
        code = "import os, torch, torchaudio\nprint(torch.__version__, torchaudio.__version__, os.getuid())"
        out = asyncio.run(_execute(running, kernel["id"], code))
    finally:
        _call("DELETE", f"{running.url}/api/kernels/{kernel['id']}", running.token)
    assert out["reply"] == "ok" and not out["error"], out
    torch_version, torchaudio_version, uid = out["stream"].split()
    assert torch_version.split("+")[0] == os.environ["IMAGEKIT_EXPECT_TORCH"]
    assert torchaudio_version.split("+")[0] == os.environ["IMAGEKIT_EXPECT_TORCHAUDIO"]
    assert int(uid) == os.getuid() != 0


def test_the_server_runs_as_the_images_non_root_user(server):
    running, _ = server
    status = Path(f"/proc/{running.proc.pid}/status").read_text()
    real, effective = next(line.split()[1:3] for line in status.splitlines() if line.startswith("Uid:"))
    assert "jupyter" in Path(f"/proc/{running.proc.pid}/cmdline").read_text()
    assert int(real) == int(effective) == os.getuid() != 0


def test_a_token_is_made_for_each_start_printed_once_and_a_given_one_never(server, tmp_path):
    given, startup = server
    assert given.token is not None and given.token not in startup
    tokens = []
    for n in range(2):
        made = _start(tmp_path, f"made-{n}", {})
        try:
            text = made.text()
            (token,) = re.findall(r"/lab\?token=([0-9a-f]{48})\b", text)
            assert text.count(token) == 1, text
            assert _get(made.url + "/api/status", token)[0] == 200
            assert not BAD_LINE.findall(text), text
            tokens.append(token)
        finally:
            _stop(made)
    assert tokens[0] != tokens[1]


def test_a_token_on_the_command_line_is_refused():
    out = subprocess.run(["start-jupyter", "--IdentityProvider.token="], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "JUPYTER_TOKEN" in out.stderr, out
