"""The jupyter extension end to end, on one engine (Engine 28.5, classic store; the other engines'
sessions drop it, see conftest.py): `nox -s build test` builds it on the session's runtime image
and runs its own tests inside it; then the image is started as `docker run` starts it, on loopback,
and driven from headless Chromium (Debian's chromium and chromedriver, through Selenium): the login
page without the token, a notebook that plots a mel spectrogram with it. The screenshot is kept in
IMAGEKIT_TEST_ARTIFACTS (default: test-artifacts/ in the checkout)."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import struct
import subprocess
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from e2e_workspace import JUPYTER_ID, NO_JUPYTER, ROOT
from engines import CLASSIC

pytestmark = [pytest.mark.docker, pytest.mark.engines(CLASSIC, primary=False), pytest.mark.tool("chromium", "chromedriver")]

SHOWN = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on screen, not one in a hidden tab
ARTIFACTS = Path(os.environ.get("IMAGEKIT_TEST_ARTIFACTS") or ROOT / "test-artifacts")
# A 440 Hz tone, one second at 16 kHz, as a 64-band mel spectrogram; its loudest band is printed so
# the page shows the computation as well as the plot.
CELL = """\
import math, torch, torchaudio, matplotlib.pyplot as plt
t = torch.arange(16000) / 16000
tone = torch.sin(2 * math.pi * 440 * t)[None]
mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=400, n_mels=64)(tone)
print("mel", tuple(mel.shape), "loudest band", int(mel[0].mean(dim=1).argmax()))
plt.imshow((mel[0] + 1e-6).log(), origin="lower", aspect="auto")
plt.title("mel spectrogram of a 440 Hz tone")
plt.show()
"""


def _band_edges_hz(band: int, bands: int = 64, top_hz: float = 8000) -> tuple[float, float, float]:
    """The edges and centre of mel band ``band`` as torchaudio's MelSpectrogram lays them out
    (HTK mel scale, bands + 2 points evenly spaced from 0 to ``top_hz``, triangles between)."""
    top = 2595 * math.log10(1 + top_hz / 700)
    low, centre, high = (top * (band + k) / (bands + 1) for k in range(3))
    return tuple(700 * (10 ** (m / 2595) - 1) for m in (low, centre, high))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def jupyter_image(ws, engine, tmp_path_factory):
    """The session's matrices without the overlay that drops the extension: the lock gains its
    entry (a copy, the session's stays as it is), then `nox -s build test` builds and tests it
    alone (its parent is the session's runtime image, already built)."""
    tmp = tmp_path_factory.mktemp("jupyter")
    pairs = [(flag, value) for flag, value in zip(ws.matrices[::2], ws.matrices[1::2], strict=True) if not value.endswith(NO_JUPYTER)]
    lock = tmp / "jupyter.lock"
    shutil.copy(dict(pairs)["--lock"], lock)
    args = [word for flag, value in pairs for word in (flag, str(lock) if flag == "--lock" else value)]
    locked = ws.imagekit("lock", *args, timeout=900)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    reports = tmp / "reports"
    env = {**ws.env, "IMAGEKIT_REPORTS": str(reports), "IMAGEKIT_GPUS": "none"}
    run = [*ws.nox("build", "test"), "--", *args, "--only", JUPYTER_ID]
    out = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, env=env, timeout=2400)
    return {"out": out, "reports": reports, "ref": f"{ws.repo}:{JUPYTER_ID}"}


def test_nox_build_test_builds_the_jupyter_image_and_runs_its_own_tests(jupyter_image, engine):
    out = jupyter_image["out"]
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    root = ET.parse(jupyter_image["reports"] / "junit" / f"{JUPYTER_ID}.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    own = {n for n, c in cases.items() if "test_jupyter" in (c.get("classname") or "")}
    assert own >= {
        "test_the_server_starts_without_warnings_or_errors",
        "test_nothing_is_served_without_the_token",
        "test_the_api_answers_with_the_token",
        "test_a_kernel_runs_the_images_torch_and_torchaudio",
        "test_the_server_runs_as_the_images_non_root_user",
        "test_a_token_is_made_for_each_start_printed_once_and_a_given_one_never",
    }, sorted(cases)
    bad = [
        n for n in own if cases[n].find("failure") is not None or cases[n].find("error") is not None or cases[n].find("skipped") is not None
    ]
    assert not bad, bad
    config = engine.inspect_image(jupyter_image["ref"])["Config"]
    assert config["Entrypoint"] == ["/usr/bin/tini", "-s", "--"] and config["Cmd"] == ["start-jupyter"]
    assert "8888/tcp" in config["ExposedPorts"] and "/data" in config["Volumes"]
    assert config["Healthcheck"]["Test"][0] == "CMD" and "/api" in config["Healthcheck"]["Test"][-1]
    assert not [e for e in config["Env"] if "TOKEN" in e.split("=", 1)[0]], "no token is baked into the image"


@pytest.fixture(scope="module")
def served(jupyter_image, engine):
    """The image as a user starts it: `docker run -d -p 127.0.0.1::8888 IMAGE`, default command,
    token made by the image; the anonymous /data volume goes with the container."""
    assert jupyter_image["out"].returncode == 0, "the jupyter image did not build"
    container = engine.client.containers.run(jupyter_image["ref"], detach=True, ports={"8888/tcp": ("127.0.0.1", None)})
    try:
        deadline, token = time.monotonic() + 180, None
        while time.monotonic() < deadline:
            container.reload()
            logs = container.logs().decode(errors="replace")
            found = re.findall(r"/lab\?token=([0-9a-f]{48})\b", logs)
            if found and container.attrs["State"].get("Health", {}).get("Status") == "healthy":
                token = found[0]
                break
            assert container.status == "running", logs
            time.sleep(1)
        assert token is not None, f"no token printed, or not healthy within 180 s: {container.attrs['State']}\n{logs}"
        port = container.attrs["NetworkSettings"]["Ports"]["8888/tcp"][0]["HostPort"]
        yield {"container": container, "url": f"http://127.0.0.1:{port}", "token": token, "logs": logs}
    finally:
        container.remove(force=True, v=True)


def test_docker_run_prints_one_token_runs_as_non_root_under_tini_and_is_healthy(served, engine):
    container, token, logs = served["container"], served["token"], served["logs"]
    assert logs.count(token) == 1, logs
    top = container.top(ps_args="-o pid,uid,args")
    by_pid = {row[0]: row for row in top["Processes"]}
    assert any("tini" in row[2] for row in by_pid.values()), top
    server = [row for row in top["Processes"] if "jupyter-lab" in row[2] or "jupyter lab" in row[2]]
    assert server and all(row[1] != "0" for row in server), top
    assert container.attrs["State"]["Health"]["Status"] == "healthy"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1300",
                f"--user-data-dir={profile}", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync"):  # fmt: skip
        options.add_argument(arg)
    # A driver path of our own: Selenium Manager (which would download one) never runs.
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def _wait(driver, css: str, timeout: float = 120):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def _labelled(driver, css: str, label: str, timeout: float = 60):
    """The element matching ``css`` whose text is ``label`` (a menu's entries carry no ids)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def find(d):
        return next((e for e in d.find_elements(By.CSS_SELECTOR, css) if e.text == label), False)

    return WebDriverWait(driver, timeout).until(find)


def test_without_the_token_the_browser_lands_on_the_login_page(served, browser):
    browser.delete_all_cookies()
    browser.get(served["url"] + "/lab")
    _wait(browser, "#password_input")
    assert "/login" in browser.current_url
    assert "jp-Notebook" not in browser.page_source


def test_a_notebook_plots_a_mel_spectrogram_in_the_browser(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, token = served["url"], served["token"]
    browser.get(url + "/lab")
    _wait(browser, "#password_input").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#login_submit").click()
    _wait(browser, ".jp-LabShell")
    # The notebook, with its kernel named (no kernel picker), put where the user's notebooks go.
    name = f"spectrogram-{uuid.uuid4().hex[:6]}.ipynb"
    cell = {"cell_type": "code", "id": "mel", "metadata": {}, "execution_count": None, "outputs": [], "source": CELL}
    kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook = {"cells": [cell], "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}
    body = json.dumps({"type": "notebook", "content": notebook}).encode()
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    urllib.request.urlopen(urllib.request.Request(f"{url}/api/contents/{name}", data=body, method="PUT", headers=headers), timeout=60)

    browser.get(f"{url}/lab/tree/{name}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        # The kernel connected and idle (the status bar says so), then the Run menu's "Run All
        # Cells": a menu command, which no focus or timing of a key press can lose.
        WebDriverWait(browser, 300).until(lambda d: "| Idle" in d.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget").text)
        _labelled(browser, ".lm-MenuBar-itemLabel", "Run").click()
        _labelled(browser, ".lm-Menu-itemLabel", "Run All Cells").click()
        image = _wait(browser, f"{SHOWN} .jp-OutputArea-output img", timeout=600)
    except Exception:
        browser.save_screenshot(str(ARTIFACTS / "jupyter-mel-spectrogram-failed.png"))
        raise
    # The code, what it printed and the plot, in one picture.
    browser.execute_script("arguments[0].scrollIntoView(true)", _wait(browser, f"{SHOWN} .jp-Cell"))
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0
    shot = ARTIFACTS / "jupyter-mel-spectrogram.png"
    browser.save_screenshot(str(shot))

    text = browser.find_element(By.CSS_SELECTOR, f"{SHOWN} .jp-OutputArea").text
    # (channel, bands, frames: one per 200 samples, both ends padded), and the tone where it is.
    found = re.search(r"mel \(1, 64, 81\) loudest band (\d+)", text)
    assert found, text
    low, centre, high = _band_edges_hz(int(found.group(1)))
    assert abs(centre - 440) < (high - low) / 2, (found.group(0), low, centre, high)
    assert not browser.find_elements(By.CSS_SELECTOR, f'{SHOWN} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    # The plot itself: a PNG matplotlib drew (its size in the header), not an empty placeholder.
    src = image.get_attribute("src")
    assert src.startswith("data:image/png;base64,"), src[:80]
    png = base64.b64decode(src.split(",", 1)[1])
    width, height = struct.unpack(">II", png[16:24])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and width >= 300 and height >= 200 and len(png) > 10_000, (width, height, len(png))
    assert shot.stat().st_size > 20_000
    # The notebook was saved in the volume the image declares, by its user.
    saved = served["container"].exec_run(["stat", "-c", "%u", f"/data/{name}"])
    assert saved.exit_code == 0 and saved.output.decode().strip() != "0"
    # Nothing went wrong on the server's side either. One warning is known and harmless: tornado's
    # about jupyter_server's websocket ping settings, once, at the first kernel connection
    # (jupyter-server/jupyter_server#1612; the fix it suggests breaks the connections, see the snippet).
    log = served["container"].logs().decode(errors="replace")
    bad = [line for line in log.splitlines() if line.startswith(("[W", "[E", "[C")) and "websocket_ping_timeout" not in line]
    assert not bad and "Traceback" not in log, log
