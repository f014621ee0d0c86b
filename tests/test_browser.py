"""The dashboard in a real browser: headless Chromium opens a finished run's env on vizlab's
server and must render it with no console error, no failed request and no request leaving
localhost (recorded from the browser's own network events, since a machine with no internet
would otherwise hide such requests).

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package; skipped otherwise.
Set VIZLAB_DASHBOARD_PNG=path to also write the screenshot there (docs/dashboard.png).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import free_port

from vizlab.server import assets
from vizlab.server import lifecycle as srv

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium
except ImportError:
    selenium = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="needs chromium and chromedriver "
                              "(Debian: apt-get install chromium chromium-driver)"),
    pytest.mark.skipif(selenium is None, reason="needs selenium (pip install selenium)"),
]

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
ENV = "mlp-mnist-short-run"


@contextmanager
def started_server(tmp_path, monkeypatch):
    """`vizlab server start` on a free port, its state under tmp_path; its URL; stopped after.
    Shared by every browser test."""
    assets.ensure_static()
    monkeypatch.setenv("VIZLAB_STATE_DIR", str(tmp_path / "state"))
    port = free_port()
    out = subprocess.run([sys.executable, "-m", "vizlab", "server", "start", "--port", str(port)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.stop()


@pytest.fixture
def dashboard(tmp_path, monkeypatch):
    """vizlab's server on a free port holding the env of a finished short run; stopped after."""
    with started_server(tmp_path, monkeypatch) as url:
        # A real run on the MNIST that vizlab ships (unpacked into a fresh data dir).
        run = subprocess.run(
            [sys.executable, "-m", "vizlab", "run", "mlp", "--data-dir", str(tmp_path / "data"),
             "--limit-train", "3000", "--epochs", "3", "--runs-dir", str(tmp_path / "runs"),
             "--name", ENV, "--visdom-url", url, "--progress", "plain"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert run.returncode == 0, run.stderr
        yield url


def _browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,1100",
                f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def _network(driver) -> tuple[list[str], list[str]]:
    """(every URL the page requested or opened a websocket to, the requests that failed)."""
    urls, failed, by_id = [], [], {}
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        method, params = msg["method"], msg.get("params", {})
        if method == "Network.requestWillBeSent":
            by_id[params["requestId"]] = params["request"]["url"]
            urls.append(params["request"]["url"])
        elif method == "Network.webSocketCreated":
            urls.append(params["url"])
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            failed.append(f'{params["response"]["status"]} {params["response"]["url"]}')
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            failed.append(f'{params.get("errorText")} {by_id.get(params["requestId"], "?")}')
    return urls, failed


def open_env(driver, url: str, env: str, ready_js: str, timeout: float = 60) -> None:
    """Open ``env``'s page and wait until the script ``ready_js`` returns true; the logs read
    afterwards hold only this page's (the browser's start page makes requests of its own)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")
    driver.get_log("performance")
    driver.get_log("browser")
    driver.get(f"{url}/env/{env}")
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(ready_js))


def test_dashboard_renders_offline(dashboard, tmp_path):
    driver = _browser(tmp_path)
    try:
        open_env(driver, dashboard, ENV, """
            const plots = document.querySelectorAll('.js-plotly-plot .scatterlayer .trace');
            const imgs = [...document.querySelectorAll('img')]
                .filter(i => i.complete && i.naturalWidth >= 8 * 28);
            return plots.length >= 6 && imgs.length >= 2;""")
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot))
        if os.environ.get("VIZLAB_DASHBOARD_PNG"):
            shutil.copyfile(shot, os.environ["VIZLAB_DASHBOARD_PNG"])

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        urls, failed = _network(driver)
    finally:
        driver.quit()

    assert errors == []
    assert failed == []
    web = [u for u in urls if urlparse(u).scheme not in ("data", "blob")]
    assert web and all(urlparse(u).scheme in ("http", "ws") for u in web), web
    assert [u for u in web if urlparse(u).hostname not in LOCAL_HOSTS] == []
    assert f"{dashboard}/user/style.css" in web  # the URL tornado >= 6.5 used to refuse
    assert any(u.startswith(f"{dashboard}/static/js/plotly-plotly.min.js") for u in web)
