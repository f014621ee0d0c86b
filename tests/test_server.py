"""`vizlab server`: real server processes on free loopback ports, each test in its own state dir.

The front-end files are laid once into the user's cache (the first run on a machine fetches them
from the npm registry) and reused by every later run; the registry tests below serve tarballs
from a local HTTP server, so only that first lay needs a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, visdom_client, wait_for

from vizlab.errors import VizlabError
from vizlab.server import assets
from vizlab.server import lifecycle as srv


@pytest.fixture(scope="session")
def front_end() -> Path:
    """The laid front-end files (laid here at most once per machine)."""
    return assets.ensure_static()


@pytest.fixture
def state(tmp_path, monkeypatch, front_end):
    """A private state dir for this test; stops whatever server the test left running."""
    monkeypatch.setenv("VIZLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv(srv.USER_VAR, raising=False)
    monkeypatch.delenv(srv.PASSWORD_VAR, raising=False)
    yield tmp_path / "state"
    srv.stop()


def vizlab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vizlab", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def client(port: int, env: str, **kw):
    return visdom_client(port, env, **kw)


def test_start_status_stop(state):
    port = free_port()
    out = vizlab("server", "start", "--port", str(port))
    assert out.returncode == 0, out.stderr
    assert f"http://127.0.0.1:{port}" in out.stdout
    info = srv.running()
    assert info is not None and info.port == port and info.host == "127.0.0.1"

    # The page answers 200 under tornado >= 6.5 and links user/style.css where visdom serves it.
    for path in ("/", "/env/main"):
        status, body = get(f"{info.url}{path}")
        assert status == 200 and "<title>visdom</title>" in body
        assert 'href=/user/style.css' in body
    assert get(f"{info.url}/user/style.css")[0] == 200
    assert get(f"{info.url}/static/js/plotly-plotly.min.js")[0] == 200

    out = vizlab("server", "status")
    assert out.returncode == 0, out.stderr
    assert info.url in out.stdout and str(info.pid) in out.stdout
    assert "uptime:" in out.stdout and "main" in out.stdout

    out = vizlab("server", "stop")
    assert out.returncode == 0 and f"pid {info.pid}" in out.stdout
    assert not answers(port) and not srv.pid_file().exists()
    assert vizlab("server", "status").returncode == 3


def test_start_when_running_says_so(state):
    port = free_port()
    assert vizlab("server", "start", "--port", str(port)).returncode == 0
    pid = srv.running().pid
    out = vizlab("server", "start", "--port", str(port))
    assert out.returncode == 0 and "already runs" in out.stdout and str(pid) in out.stdout
    assert srv.running().pid == pid


def test_port_taken_is_one_line_exit_2(state):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        out = vizlab("server", "start", "--port", str(port))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and f"port {port}" in out.stderr and "taken" in out.stderr
    assert srv.running() is None


def test_envs_survive_stop_and_start(state):
    port = free_port()
    assert vizlab("server", "start", "--port", str(port)).returncode == 0
    viz = client(port, "kept")
    viz.line(X=[0, 1, 2], Y=[3.0, 2.0, 1.5], win="loss")
    assert viz.save(["kept"])
    # An env no client saved: the server writes it when it stops.
    client(port, "unsaved").text("still here", win="note")
    assert vizlab("server", "stop").returncode == 0

    assert vizlab("server", "start", "--port", str(port)).returncode == 0
    viz = client(port, "kept")
    assert {"kept", "unsaved"} <= set(viz.get_env_list())
    loss = json.loads(viz.get_window_data("loss", env="kept"))
    assert loss["content"]["data"][0]["y"] == [3.0, 2.0, 1.5]
    note = json.loads(viz.get_window_data("note", env="unsaved"))
    assert note["content"] == "still here"


def test_foreground_is_the_server_itself(state):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vizlab", "server", "start", "--foreground",
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while srv.running() is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        info = srv.running()
        assert info is not None and info.pid == proc.pid  # exec: status and stop see it as ours
        assert get(f"{info.url}/")[0] == 200
        assert vizlab("server", "stop").returncode == 0
        assert proc.wait(10) == 0
        assert f"serving http://127.0.0.1:{port}" in proc.stdout.read()  # its log: the terminal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _listen_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port``, from the kernel's socket table (IPv4)."""
    addrs = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        hexip, hexport = local.split(":")
        if state == "0A" and int(hexport, 16) == port:
            addrs.add(socket.inet_ntoa(bytes.fromhex(hexip)[::-1]))
    return addrs


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")
def test_listens_on_loopback_only_by_default(state):
    port = free_port()
    assert vizlab("server", "start", "--port", str(port)).returncode == 0
    assert _listen_addresses(port) == {"127.0.0.1"}


def test_other_host_warns_once(state):
    port = free_port()
    env = {srv.USER_VAR: "ada", srv.PASSWORD_VAR: "s3cret"}  # exposed: keep it behind a login
    out = vizlab("server", "start", "--port", str(port), "--host", "0.0.0.0", "--login", env=env)
    assert out.returncode == 0, out.stderr
    warnings = [ln for ln in out.stderr.splitlines() if ln.startswith("vizlab: warning:")]
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0]
    if Path("/proc/net/tcp").exists():
        assert _listen_addresses(port) == {"0.0.0.0"}


def test_login_needs_credentials(state):
    port = free_port()
    out = vizlab("server", "start", "--port", str(port), "--login")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert srv.USER_VAR in out.stderr and srv.PASSWORD_VAR in out.stderr
    assert srv.running() is None

    env = {srv.USER_VAR: "ada", srv.PASSWORD_VAR: "s3cret"}
    assert vizlab("server", "start", "--port", str(port), "--login", env=env).returncode == 0
    status, body = get(f"http://127.0.0.1:{port}/")
    assert status == 200 and "Visdom Login" in body
    # Without a login the API refuses; with the same variables the client gets in.
    req = urllib.request.Request(f"http://127.0.0.1:{port}/env_state", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 401
    viz = client(port, "private", username="ada", password="s3cret")
    viz.text("hello", win="t")
    assert "private" in viz.get_env_list()
    with pytest.raises(RuntimeError):
        client(port, "private", username="ada", password="wrong").get_env_list()


def test_client_with_credentials_works_without_login(state):
    port = free_port()
    assert vizlab("server", "start", "--port", str(port)).returncode == 0
    viz = client(port, "open", username="ada", password="s3cret")  # VIZLAB_VISDOM_* set anyway
    viz.text("hello", win="t")
    assert "open" in viz.get_env_list()


def test_debug_mode_is_off(tmp_path, front_end):
    """visdom's Application forces tornado's debug mode on; vizlab's app must not have it."""
    from vizlab.server.main import build_app

    app = build_app(free_port(), tmp_path / "envs", front_end)
    for key in ("debug", "autoreload", "serve_traceback"):
        assert app.settings[key] is False, key
    assert app.settings["static_path"] == str(front_end)


def test_websocket_refuses_other_sites(state):
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    port = free_port()
    assert vizlab("server", "start", "--port", str(port)).returncode == 0
    url = f"ws://127.0.0.1:{port}/socket"

    async def connect(origin):
        conn = await websocket_connect(HTTPRequest(url, headers={"Origin": origin}))
        conn.close()

    asyncio.run(connect(f"http://127.0.0.1:{port}"))  # the dashboard page itself
    with pytest.raises(HTTPClientError) as refused:
        asyncio.run(connect("https://attacker.example"))
    assert refused.value.code == 403


def test_ensure_server_starts_once(state, monkeypatch):
    port = free_port()
    monkeypatch.setattr(srv, "DEFAULT_PORT", port)  # the default port, without taking 8097 here
    monkeypatch.setattr(srv, "_ensured", set())
    url = f"http://localhost:{port}"
    assert srv.ensure_server("http://example.org:8097") is None  # not the default local URL
    assert srv.ensure_server(url) == url  # once the server is ready, or after ENSURE_WAIT s
    info = srv.running()
    assert info is not None and info.port == port
    assert wait_for(lambda: answers(port))
    assert srv.ensure_server(url) is None  # once per process
    monkeypatch.setattr(srv, "_ensured", set())
    assert srv.ensure_server(url) is None  # something answers: nothing to start


def test_ensure_server_warns_instead_of_raising(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("VIZLAB_STATE_DIR", str(blocker / "state"))  # cannot be created
    monkeypatch.setattr(srv, "DEFAULT_PORT", free_port())
    monkeypatch.setattr(srv, "_ensured", set())
    assert srv.ensure_server(f"http://localhost:{srv.DEFAULT_PORT}") is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vizlab: warning: could not start")


def test_client_credentials(monkeypatch):
    monkeypatch.setenv(srv.USER_VAR, "ada")
    monkeypatch.delenv(srv.PASSWORD_VAR, raising=False)
    assert srv.client_credentials() is None
    monkeypatch.setenv(srv.PASSWORD_VAR, "pw")
    assert srv.client_credentials() == ("ada", "pw")


# ---- front-end files ----

def test_laid_files_match_their_pins(front_end):
    assert assets.verify(front_end) == []
    assert (front_end / "version.built").read_text() == assets.visdom_version()  # no CDN download
    assert (front_end / "index.html").is_file() and (front_end / "js" / "main.js").is_file()


def test_export_then_lay_from_dir(front_end, tmp_path, monkeypatch):
    exported = tmp_path / "carry"
    assert assets.export(exported) == len(assets.ASSETS)
    monkeypatch.setenv("VIZLAB_VISDOM_STATIC", str(tmp_path / "offline" / "static"))
    out = vizlab("server", "assets", "--assets-dir", str(exported))
    assert out.returncode == 0, out.stderr
    assert assets.verify(tmp_path / "offline" / "static") == []

    (exported / "js" / "sjcl.js").write_text("tampered")
    monkeypatch.setenv("VIZLAB_VISDOM_STATIC", str(tmp_path / "other" / "static"))
    out = vizlab("server", "assets", "--assets-dir", str(exported))
    assert out.returncode == 2 and "js/sjcl.js" in out.stderr and out.stderr.count("\n") == 1
    assert not (tmp_path / "other" / "static").exists()


@contextlib.contextmanager
def local_registry(tarballs: dict[str, bytes]):
    """A local npm registry (tarball URLs only) on a free port; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = tarballs.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def npm_tarballs(static: Path, replace: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """npm-style tarballs (files under package/) rebuilt from laid files: the same bytes."""
    replace = replace or {}
    by_package: dict[tuple[str, str], list] = {}
    for a in assets.ASSETS:
        by_package.setdefault((a.package, a.version), []).append(a)
    out = {}
    for (name, version), rows in by_package.items():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for a in rows:
                data = replace.get(a.path) or (static / a.path).read_bytes()
                info = tarfile.TarInfo(f"package/{a.member}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        out[f"/{name}/-/{name}-{version}.tgz"] = buf.getvalue()
    return out


def test_lay_over_http_when_npm_is_absent(front_end, tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no npm: plain HTTP
    with local_registry(npm_tarballs(front_end)) as url:
        monkeypatch.setenv("npm_config_registry", url)
        monkeypatch.setenv("VIZLAB_VISDOM_STATIC", str(tmp_path / "http" / "static"))
        static = assets.lay()
    assert assets.verify(static) == [] and assets.is_complete(static)


def test_lay_refuses_a_registry_serving_other_bytes(front_end, tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    other = npm_tarballs(front_end, replace={"js/jquery.min.js": b"window.evil = 1;"})
    with local_registry(other) as url:
        monkeypatch.setenv("npm_config_registry", url)
        monkeypatch.setenv("VIZLAB_VISDOM_STATIC", str(tmp_path / "bad" / "static"))
        with pytest.raises(VizlabError, match="jquery@3.1.1: dist/jquery.min.js does not match"):
            assets.lay()
    assert not (tmp_path / "bad").joinpath("static").exists()
