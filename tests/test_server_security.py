"""vizlab's Visdom server probed as an attacker would, from this machine: real server processes,
raw HTTP requests with the headers a browser (or an attacker's page) sends, websockets.

One case per finding of issue 12: cross-site writes, DNS rebinding, path traversal, one bad env
breaking all, unbounded bodies, the login; and what must keep working (vizlab's client, the
page's own requests). The browser's side is in test_browser_cross_origin.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port, wait_port

from vizlab.report import visdom_client as vc
from vizlab.server import assets, env_names, login
from vizlab.server import lifecycle as srv
from vizlab.server.request_rules import MAX_BODY_BYTES, Policy, host_allowed

USER, PASSWORD = "ada", "s3cret-Passw0rd"
JSON = {"Content-Type": "application/json"}
# What a page on another site can make the browser send without asking the server first:
FORM = {"Origin": "http://attacker.example", "Content-Type": "text/plain"}  # <form enctype=...>
NO_CORS = {"Origin": "http://attacker.example", "Content-Type": "text/plain;charset=UTF-8",
           "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}  # fetch(mode: no-cors)
PLAIN = {"Content-Type": "text/plain"}  # no Origin, no custom header


class Server:
    def __init__(self, tmp: Path, *args: str, env: dict | None = None):
        self.port = free_port()
        self.env_dir = tmp / "envs"
        self.log = tmp / "server.log"
        tmp.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vizlab.server.main", "--port", str(self.port),
                 "--env-dir", str(self.env_dir), "--state-dir", str(tmp / "state"), *args],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError(f"the server did not start: {self.log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body=b"", headers: dict | None = None,
                host: str | None = None) -> tuple[int, str, http.client.HTTPResponse]:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body or None,
                         headers={"Host": host or self.host, **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace"), resp
        finally:
            conn.close()

    def post(self, path: str, body, headers: dict | None = None, **kw) -> tuple[int, str]:
        status, text, _ = self.request("POST", path, body, headers, **kw)
        return status, text

    def envs(self) -> list[str]:
        return json.loads(self.post("/env_state", {}, JSON)[1])

    def windows(self, env: str) -> dict:
        status, text = self.post("/win_data", {"eid": env, "win": None}, JSON)
        return json.loads(text) if status == 200 else {}

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def front_end():
    return assets.ensure_static()


@pytest.fixture(scope="module")
def server(tmp_path_factory, front_end):
    s = Server(tmp_path_factory.mktemp("open"))
    yield s
    s.stop()
    assert "Traceback" not in s.log.read_text()  # every refusal above: one line, no traceback


@pytest.fixture(scope="module")
def locked(tmp_path_factory, front_end):
    """A server started with --login."""
    s = Server(tmp_path_factory.mktemp("login"), "--login",
               env={srv.USER_VAR: USER, srv.PASSWORD_VAR: PASSWORD})
    yield s
    s.stop()
    assert "Traceback" not in s.log.read_text()


def text_pane(env: str, win: str, content: str = "<img src=x onerror=alert(1)>") -> dict:
    return {"eid": env, "win": win, "data": [{"type": "text", "content": content}],
            "opts": {"title": win}}


def draw(url: str, env: str, win: str, text: str = "kept") -> None:
    viz = vc.connect(url, env)
    try:
        vc.draw(viz, env, win, {"data": [{"type": "text", "content": text}], "opts": {}})
    finally:
        viz.close()


# ---- cross-site writes ----

WRITES = [
    ("/events", text_pane("victim", "planted")),
    ("/update", {**text_pane("victim", "note"), "append": True}),
    ("/env/attacker", {"eid": "attacker"}),
    ("/close", {"eid": "victim", "win": "note"}),
    ("/delete_env", {"eid": "victim"}),
    ("/save", {"data": ["victim"], "eid": "victim"}),
    ("/fork_env", {"prev_eid": "victim", "eid": "attacker"}),
    ("/win_data", {"eid": "victim", "win": "note", "data": json.dumps(text_pane("x", "y"))}),
]


@pytest.mark.parametrize("headers", [FORM, NO_CORS, PLAIN], ids=["form", "no-cors", "no-origin"])
def test_cross_site_writes_are_refused(server, headers):
    draw(server.url, "victim", "note")
    for path, body in WRITES:
        status, text = server.post(path, body, headers)
        assert status == 403, (path, status, text)
    # nothing changed: no planted pane, no new env, the victim's pane untouched
    assert set(server.windows("victim")) == {"note"}
    assert server.windows("victim")["note"]["content"] == "kept"
    assert "attacker" not in server.envs()
    assert not (server.env_dir / "attacker.json").exists()


def test_other_origins_are_refused_even_with_json(server):
    """A page on another port of this machine (same site, other origin): a JSON post, had the
    browser sent it without a preflight, or a WebSocket-less API call."""
    other = f"http://127.0.0.1:{free_port()}"
    for origin in (other, "null", f"http://localhost:{server.port}"):
        status, _ = server.post("/events", text_pane("victim2", "planted"),
                                {"Origin": origin, **JSON})
        assert status == 403, origin
    assert "victim2" not in server.envs()


def test_own_page_and_clients_still_write(server):
    # Visdom's page: jQuery's $.post from the page's own origin (JSON labelled as a form).
    page = {"Origin": server.url, "X-Requested-With": "XMLHttpRequest",
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "Sec-Fetch-Site": "same-origin"}
    assert server.post("/env/pagemade", {"eid": "pagemade"}, page)[0] == 200
    # The page's fetch (Visdom's polling mode): JSON, same origin.
    assert server.post("/env_state", {}, {"Origin": server.url, **JSON})[0] == 200
    # vizlab's own client, and Visdom's Python client given the header.
    draw(server.url, "clientmade", "w", "drawn")
    assert server.windows("clientmade")["w"]["content"] == "drawn"
    assert {"pagemade", "clientmade"} <= set(server.envs())


# ---- DNS rebinding ----

def test_foreign_host_names_are_refused(server):
    evil = f"rebind.attacker.example:{server.port}"
    for method, path, body, headers in [
            ("GET", "/", b"", {}), ("GET", "/env/main", b"", {}),
            ("GET", "/static/js/main.js", b"", {}),
            ("POST", "/env_state", b"{}", JSON),
            # to the browser, a rebound page is same-origin: its Origin matches its Host
            ("POST", "/events", json.dumps(text_pane("main", "rebound")).encode(),
             {"Origin": f"http://{evil}", **JSON})]:
        status, _, _ = server.request(method, path, body, headers, host=evil)
        assert status == 403, (method, path)
    assert "rebound" not in server.windows("main")
    for host in (server.host, f"localhost:{server.port}", f"[::1]:{server.port}", "127.0.0.1"):
        assert server.request("GET", "/", host=host)[0] == 200, host


def test_websockets_check_host_and_origin(server):
    assert asyncio.run(_ws_status(server.port, "/socket", {"Origin": server.url})) == 101
    evil = f"rebind.attacker.example:{server.port}"
    assert asyncio.run(_ws_status(server.port, "/socket",
                                  {"Origin": f"http://{evil}", "Host": evil})) == 403
    assert asyncio.run(_ws_status(server.port, "/socket",
                                  {"Origin": "http://attacker.example"})) == 403
    assert asyncio.run(_ws_status(server.port, "/vis_socket",
                                  {"Origin": "http://attacker.example"})) == 403


def test_allowed_names_and_listen_address():
    local = Policy.build("127.0.0.1", ("dash.example",))
    assert host_allowed(local, "dash.example:8097") and host_allowed(local, "DASH.example.")
    assert host_allowed(local, "127.0.0.5:1") and host_allowed(local, "[::1]:8097")
    assert not host_allowed(local, "10.0.0.7:8097")  # not where it listens
    assert not host_allowed(local, "evil.example") and not host_allowed(local, "")
    assert not host_allowed(local, "localhost.evil.example")
    everywhere = Policy.build("0.0.0.0")
    assert host_allowed(everywhere, "10.0.0.7:8097")  # an address cannot be rebound
    assert not host_allowed(everywhere, "myhost:8097")  # a name needs --allow-host
    assert host_allowed(Policy.build("10.0.0.7"), "10.0.0.7:8097")


def test_allow_host_through_the_cli(tmp_path, monkeypatch, front_end):
    monkeypatch.setenv("VIZLAB_STATE_DIR", str(tmp_path / "state"))
    port = free_port()
    out = _vizlab("server", "start", "--port", str(port), "--allow-host", "dash.example")
    try:
        assert out.returncode == 0, out.stderr
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for host, expected in ((f"dash.example:{port}", 200), (f"other.example:{port}", 403)):
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == expected, host
        conn.close()
    finally:
        _vizlab("server", "stop")
    bad = _vizlab("server", "start", "--port", str(port), "--allow-host", "a/b")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--allow-host" in bad.stderr


# ---- path traversal, bad env names ----

def test_env_names_cannot_leave_the_env_dir(tmp_path, front_end):
    s = Server(tmp_path / "srv")
    try:
        for path, body in [("/env/x", {"eid": "../../x"}), ("/events", text_pane("../../x", "w")),
                           ("/save", {"data": ["../../x"]}), ("/env/..%2F..%2Fx", {"sid": "s"}),
                           ("/fork_env", {"prev_eid": "main", "eid": "../x"})]:
            status, text = s.post(path, body, JSON)
            assert status == 400, (path, status, text)
        with pytest.raises(vc.VisdomRejected, match="env name"):  # vizlab's own --env ../../x
            vc.connect(s.url, "../../x")
        draw(s.url, "fine", "w")
    finally:
        s.stop()
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*.json")}
    assert written == {Path("srv/envs/main.json"), Path("srv/envs/fine.json")}


@pytest.mark.parametrize("eid", [123, ["main"], {"a": 1}, "a/b", "x\\", "x\n", "", "a+b",
                                 "<img src=x onerror=alert(1)>", "x" * 200, " lead", "trail "])
def test_bad_env_names_are_a_400_and_break_nothing(server, eid):
    for path in ("/events", "/env/ok"):
        status, text = server.post(path, text_pane(eid, "w") if path == "/events" else
                                   {"eid": eid}, JSON)
        assert status == 400 and text.count("\n") == 1, (path, status, text)
    envs = server.envs()
    assert all(isinstance(e, str) for e in envs)
    for page in ("/", "/env/main"):
        status, body, _ = server.request("GET", page)
        assert status == 200 and "<title>visdom</title>" in body


def test_every_vizlab_name_is_an_env_name():
    import random
    import string

    from vizlab.names import MAX_NAME, is_safe_name

    rng = random.Random(12)
    alphabet = string.ascii_letters + string.digits + "._-"
    names = ["-", "_", "...", ".x", "-x", "a" * MAX_NAME]
    names += ["".join(rng.choices(alphabet, k=rng.randint(1, MAX_NAME))) for _ in range(2000)]
    for name in filter(is_safe_name, names):
        assert env_names.problem(name) is None, name


def test_env_names_with_spaces_are_drawn_and_read(server):
    draw(server.url, "a run with spaces", "w", "drawn")
    assert server.windows("a run with spaces")["w"]["content"] == "drawn"
    assert vc.env_path("a run with spaces") == "env/a%20run%20with%20spaces"


def test_each_env_is_saved_on_its_own(tmp_path):
    import logging

    env_dir, outside = tmp_path / "envs", tmp_path / "outside.json"
    env_dir.mkdir()
    outside.write_text("precious")
    (env_dir / "linked.json").symlink_to(outside)
    fine = {"jsons": {}, "reload": {}}
    state = {"first": fine, "a/b": fine, "../outside": fine, 123: fine,
             "unserialisable": {"jsons": {"w": {1, 2}}, "reload": {}}, "linked": fine,
             "last": fine}
    saved = env_names.save_envs(state, env_dir, logging.getLogger("test"))
    assert saved == ["first", "last"]
    assert json.loads((env_dir / "first.json").read_text()) == fine
    assert json.loads((env_dir / "last.json").read_text()) == fine
    assert outside.read_text() == "precious"
    assert sorted(p.name for p in env_dir.iterdir()) == ["first.json", "last.json", "linked.json"]


# ---- bodies ----

def test_client_and_server_agree_on_the_body_limit():
    assert vc.MAX_BODY_BYTES == MAX_BODY_BYTES
    viz = vc.VisdomClient(vc.parse_url("http://127.0.0.1:9"))  # refused before connecting
    with pytest.raises(vc.VisdomRejected, match="more than the server takes"):
        vc.draw(viz, "main", "w", {"data": [{"type": "text", "content": "x" * MAX_BODY_BYTES}]})


def test_bodies_are_bounded_and_checked(server):
    # Over the limit: refused from the headers alone, before a byte of the body is sent.
    assert _headers_only(server.port, "/events", MAX_BODY_BYTES + 1, JSON) == 413
    for body, why in [(b'{"eid": ', "not JSON"), (b"\xff\xfe{}", "not JSON"),
                      (b"[1, 2]", "JSON object"), (b"[" * 100000 + b"]" * 100000, "not JSON")]:
        status, text = server.post("/events", body, JSON)
        assert status == 400 and why in text and text.count("\n") == 1, (body[:10], text)
    # The right JSON with the wrong shape for Visdom: still a 400, not a 500.
    draw(server.url, "shapes", "w")
    for path, body in [("/events", {"eid": "main", "data": 5}), ("/events", {"eid": "main"}),
                       ("/update", {"eid": "shapes", "win": "w", "data": "x"}),
                       ("/save", {"data": "main"}), ("/win_data", {"eid": "main", "data": 5}),
                       ("/close", {"eid": "nosuchenv", "win": "w"})]:
        status, text = server.post(path, body, JSON)
        assert status == 400 and text.count("\n") == 1, (path, status, text)


def test_unauthenticated_bodies_are_never_read(locked):
    before = locked.rss_kib()
    assert _headers_only(locked.port, "/events", 200 * 2**20, JSON) == 401
    # Sent anyway: the server answers and closes without buffering it.
    sent = _send_body(locked.port, "/events", 200 * 2**20, JSON)
    assert sent < 200 * 2**20
    assert locked.rss_kib() - before < 32 * 1024, "the server buffered the body"


# ---- login ----

def test_login_cookie_holds_no_password_and_is_strict(locked):
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    status, _, resp = locked.request("POST", "/", {"username": USER, "password": digest}, JSON)
    assert status == 200
    cookie = resp.getheader("Set-Cookie")
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs and "samesite=strict" in attrs
    value = cookie.split(";")[0].split("=", 1)[1]
    for secret in (PASSWORD, digest, hashlib.sha256(digest.encode()).hexdigest()):
        assert secret not in value
    session = {"Cookie": cookie.split(";")[0]}
    assert locked.post("/env_state", {}, JSON)[0] == 401
    assert locked.post("/env_state", {}, {**JSON, **session})[0] == 200
    # the cookie opens the page and its websocket; not from another site, not without it
    assert "Visdom Login" in locked.request("GET", "/")[1]
    assert "Visdom Login" not in locked.request("GET", "/", headers=session)[1]
    assert asyncio.run(_ws_status(locked.port, "/socket", {"Origin": locked.url})) == 401
    assert asyncio.run(_ws_status(locked.port, "/vis_socket", {})) == 401
    assert asyncio.run(_ws_status(locked.port, "/socket", {"Origin": locked.url, **session})) == 101
    assert asyncio.run(_ws_status(locked.port, "/socket",
                                  {"Origin": "http://attacker.example", **session})) == 403
    # a cookie signed by another server's secret, or edited, is no login
    forged = {"Cookie": f"{login.COOKIE}=2|1:0|10:1700000000|13:user_password|4:YWRh|{'0' * 64}"}
    assert locked.post("/env_state", {}, {**JSON, **forged})[0] == 401


def test_failed_logins_are_delayed(locked, monkeypatch):
    wrong = {"username": USER, "password": hashlib.sha256(b"guess").hexdigest()}
    t0 = time.monotonic()
    status, _ = locked.post("/", wrong, JSON)
    assert status == 400
    assert time.monotonic() - t0 >= login.FIRST_DELAY  # a lower bound: the server held it
    assert locked.post("/", {"username": USER}, JSON)[0] == 400  # malformed: no traceback
    # vizlab's client (and `server status`) log in with the right variables
    monkeypatch.setenv(srv.USER_VAR, USER)
    monkeypatch.setenv(srv.PASSWORD_VAR, PASSWORD)
    draw(locked.url, "private", "w", "hello")
    monkeypatch.delenv(srv.USER_VAR)
    monkeypatch.delenv(srv.PASSWORD_VAR)
    with pytest.raises(vc.VisdomRejected, match="login"):
        vc.connect(locked.url, "private")


def test_too_many_waiting_logins_are_turned_away():
    async def main():
        gate = login.Login(USER, PASSWORD)
        wrong = hashlib.sha256(b"guess").hexdigest()
        tasks = [asyncio.ensure_future(gate.attempt(USER, wrong))
                 for _ in range(login.MAX_WAITING + 2)]
        await asyncio.sleep(0)  # every attempt has started: one checks, the rest wait
        turned_away = [t for t in tasks if t.done() and isinstance(t.exception(),
                                                                     login.TooManyAttempts)]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(turned_away)

    assert asyncio.run(main()) == 2


# ---- websocket messages, status ----

def test_bad_socket_messages_are_dropped(server):
    import websocket

    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/socket", timeout=10,
                                     origin=server.url)
    try:
        for msg in ("not json", "[1]", json.dumps({"cmd": "save", "eid": "a/b", "prev_eid": "main",
                                                   "data": {}}),
                    json.dumps({"cmd": "delete_env", "eid": 123}),
                    json.dumps({"cmd": "forward_to_vis", "data": {"eid": "../x"}})):
            ws.send(msg)
        ws.send(json.dumps({"cmd": "save", "eid": "saved_by_page", "prev_eid": "main",
                            "data": {}}))
        deadline = time.monotonic() + 10
        while "saved_by_page" not in server.envs() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ws.close()
    envs = server.envs()
    assert "saved_by_page" in envs and "a_b" not in envs and "a/b" not in envs


def test_status_never_tracebacks(tmp_path, monkeypatch, front_end):
    monkeypatch.setenv("VIZLAB_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    for junk in ("{", "[1, 2]", '{"pid": "x"}', json.dumps(
            {"pid": 10**30, "host": "h", "port": 1, "env_dir": "d", "started": 0}), json.dumps(
            {"pid": os.getpid(), "host": "h", "port": 1, "env_dir": "d", "started": "x"})):
        srv.pid_file().write_text(junk)
        out = _vizlab("server", "status")
        assert out.returncode == 3 and "Traceback" not in out.stderr, (junk, out.stderr)
    port = free_port()
    assert _vizlab("server", "start", "--port", str(port)).returncode == 0
    try:
        url = f"http://127.0.0.1:{port}"
        draw(url, "x[red]markup", "w")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/env/x", body=json.dumps({"eid": 123}), headers=JSON)
        assert conn.getresponse().status == 400
        conn.close()
        out = _vizlab("server", "status")
        assert out.returncode == 0 and out.stderr == "", out.stderr
        assert "x[red]markup" in out.stdout
    finally:
        _vizlab("server", "stop")


# ---- helpers ----

def _vizlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vizlab", *args], capture_output=True,
                          text=True, timeout=120)


async def _ws_status(port: int, path: str, headers: dict) -> int:
    """101 when the websocket opens, else the HTTP status of the refusal."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    try:
        conn = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}{path}",
                                                   headers=headers))
    except HTTPClientError as exc:
        return exc.code
    conn.close()
    return 101


def _headers_only(port: int, path: str, length: int, headers: dict) -> int:
    """The status the server answers to a POST announcing ``length`` bytes, none sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
                     f"Content-Length: {length}\r\n\r\n".encode())
        return int(sock.recv(4096).split(b" ", 2)[1])


def _send_body(port: int, path: str, length: int, headers: dict) -> int:
    """Send a POST of ``length`` zero bytes until the server closes; the bytes it took."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
                     f"Content-Length: {length}\r\n\r\n".encode())
        chunk = b"\0" * 2**20
        try:
            while sent < length:
                sent += sock.send(chunk)
        except OSError:  # reset or broken pipe: the server closed the connection
            pass
    return sent
