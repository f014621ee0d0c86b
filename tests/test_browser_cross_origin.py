"""A web page from another origin, opened in headless Chromium, tries to write to the dashboard
server and fails; the dashboard page itself still works (panes render, its own posts and its
websocket pass, a properties pane's click reaches a Python client), and a real run still draws.

Needs what test_browser.py needs; skipped otherwise.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import free_port
from test_browser import CHROMEDRIVER, CHROMIUM, _browser, _network, selenium, started_server

from vizlab.report import visdom_client as vc
from vizlab.server import assets
from vizlab.server import lifecycle as srv

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver"),
    pytest.mark.skipif(selenium is None, reason="needs selenium (pip install selenium)"),
]

ENV = "mlp-after-the-attack"
PANE = "<img src=x onerror=alert(document.domain)>"  # were it drawn, the alert fails the test

# The attacker's page: every write a page can make the browser send on its own, then its title
# reports what the page could see of the results.
ATTACK = """<!doctype html><html><head><title>attacking</title></head><body>
<iframe name="sink" id="sink"></iframe>
<form id="form" method="POST" enctype="text/plain" target="sink" action="{target}/events">
  <input name='{{"eid":"victim","win":"planted_form","data":[{{"type":"text","content":"{pane}"}}],"x":"'
         value='"}}'>
</form>
<script>
const target = "{target}";
const pane = (win) => JSON.stringify({{eid: "victim", win: win,
                                       data: [{{type: "text", content: {pane_js}}}]}});
const results = {{}};
async function attempt(name, request) {{
  try {{ const r = await request(); results[name] = r.type + " " + r.status; }}
  catch (e) {{ results[name] = "failed"; }}
}}
(async () => {{
  const formDone = new Promise((ok) => document.getElementById("sink").onload = ok);
  document.getElementById("form").submit();
  await formDone;
  await attempt("no-cors", () => fetch(target + "/events",
      {{method: "POST", mode: "no-cors", body: pane("planted_no_cors")}}));
  await attempt("no-cors-delete", () => fetch(target + "/delete_env",
      {{method: "POST", mode: "no-cors", body: JSON.stringify({{eid: "victim"}})}}));
  await attempt("cors-json", () => fetch(target + "/events", {{method: "POST",
      headers: {{"Content-Type": "application/json"}}, body: pane("planted_cors")}}));
  navigator.sendBeacon(target + "/close", JSON.stringify({{eid: "victim", win: "note"}}));
  await new Promise((done) => {{
    const ws = new WebSocket(target.replace("http", "ws") + "/socket");
    ws.onopen = () => {{ results.ws = "open";
      ws.send(JSON.stringify({{cmd: "delete_env", eid: "victim"}})); setTimeout(done, 500); }};
    ws.onerror = () => {{ results.ws = "refused"; done(); }};
  }});
  document.title = "done " + JSON.stringify(results);
}})();
</script></body></html>"""


@pytest.fixture
def servers(tmp_path, monkeypatch):
    """vizlab's server on a free port (a victim env drawn), and the attacker's page on another."""
    with started_server(tmp_path, monkeypatch) as target:
        yield from _attack_page(target)


def _attack_page(target):
    page = ATTACK.format(target=target, pane=PANE, pane_js=json.dumps(PANE)).encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        viz = vc.connect(target, "victim")
        vc.draw(viz, "victim", "note", {"data": [{"type": "text", "content": "kept"}],
                                        "opts": {"title": "note"}})
        viz.close()
        yield target, f"http://localhost:{httpd.server_port}/attack.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_other_origin_cannot_write_but_the_dashboard_works(servers, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    target, attack_url = servers
    driver = _browser(tmp_path)
    try:
        driver.get(attack_url)
        WebDriverWait(driver, 60).until(lambda d: d.title.startswith("done"))
        seen = json.loads(driver.title[len("done "):])
        assert seen["cors-json"] == "failed"  # the browser asked first; the server said no
        assert seen["ws"] == "refused"

        viz = vc.connect(target, "victim")
        try:
            windows = vc.window_data(viz, "victim")
            assert set(windows) == {"note"} and windows["note"]["content"] == "kept"
            assert "planted" not in json.dumps(vc.window_data(viz, "main"))
        finally:
            viz.close()
        # The form, the no-cors fetches and the beacon reached the server and were refused.
        log = srv.log_file().read_text()
        for line in ("403 POST /events", "403 POST /delete_env", "403 POST /close",
                     "403 GET /socket"):
            assert line in log, line
        assert "Traceback" not in log

        # A real run still draws, and its dashboard works: panes over the page's websocket,
        # after the page's own POST (env/<name> with its socket id) passed the checks.
        run = subprocess.run(
            [sys.executable, "-m", "vizlab", "run", "mlp", "--data-dir", str(tmp_path / "data"),
             "--limit-train", "1000", "--limit-test", "500", "--epochs", "1", "--runs-dir",
             str(tmp_path / "runs"), "--name", ENV, "--visdom-url", target, "--progress", "plain"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert run.returncode == 0, run.stderr
        assert "not reachable" not in run.stderr
        viz = vc.connect(target, ENV)
        vc.draw(viz, ENV, "controls", {"data": [{"type": "properties", "content": [
            {"type": "button", "name": "training", "value": "Stop"}]}],
            "opts": {"title": "controls"}})
        viz.close()

        driver.get_log("performance")
        driver.get_log("browser")
        driver.get(f"{target}/env/{ENV}")
        WebDriverWait(driver, 60).until(lambda d: d.execute_script("""
            return document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= 4
                && document.querySelectorAll('.content-properties button').length == 1;"""))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        _, failed = _network(driver)
        assert errors == [] and failed == []

        # The page's websocket carries a properties click to a Python client (the control path).
        import websocket

        source = websocket.create_connection(f"{target.replace('http', 'ws')}/vis_socket",
                                             timeout=30)
        try:
            # a script's click: the grid may still be laying panes over one another
            button = driver.find_element(By.CSS_SELECTOR, ".content-properties button")
            driver.execute_script("arguments[0].click();", button)
            event = _next_property_update(source)
        finally:
            source.close()
        assert event["eid"] == ENV and event["target"] == "controls"
        assert event["value"] == "clicked" and event["propertyId"] == 0
    finally:
        driver.quit()


def _next_property_update(sock, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(sock.recv())
        if isinstance(msg, dict) and msg.get("event_type") == "PropertyUpdate":
            return msg
    raise AssertionError("no PropertyUpdate reached the Python client")


def test_login_page_logs_in_with_a_cookie_scripts_cannot_read(tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assets.ensure_static()
    monkeypatch.setenv("VIZLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(srv.USER_VAR, "ada")
    monkeypatch.setenv(srv.PASSWORD_VAR, "s3cret")
    port = free_port()
    out = subprocess.run([sys.executable, "-m", "vizlab", "server", "start", "--port", str(port),
                          "--login"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    target = f"http://127.0.0.1:{port}"
    driver = _browser(tmp_path)
    try:
        viz = vc.connect(target, "private")  # vizlab's client logs in with the variables
        vc.draw(viz, "private", "note", {"data": [{"type": "text", "content": "for ada only"}],
                                         "opts": {"title": "note"}})
        viz.close()
        driver.get(f"{target}/")
        for field, value in (("inputUsername", "ada"), ("inputPassword", "wrong")):
            driver.find_element(By.ID, field).send_keys(value)
        driver.find_element(By.ID, "submitButton").click()
        WebDriverWait(driver, 30).until(
            lambda d: d.find_element(By.ID, "errorMessage").text == "Invalid Login Information")
        driver.find_element(By.ID, "inputPassword").clear()
        driver.find_element(By.ID, "inputPassword").send_keys("s3cret")
        driver.find_element(By.ID, "submitButton").click()
        WebDriverWait(driver, 30).until(lambda d: "Visdom Login" not in d.title)
        cookies = {c["name"]: c for c in driver.get_cookies()}
        assert cookies["user_password"]["httpOnly"] and cookies["user_password"]["sameSite"] == "Strict"
        assert driver.execute_script("return document.cookie") == ""  # scripts cannot read it
        driver.get(f"{target}/env/private")  # the page and its websocket, logged in
        WebDriverWait(driver, 60).until(lambda d: "for ada only" in d.page_source)
    finally:
        driver.quit()
        srv.stop()
