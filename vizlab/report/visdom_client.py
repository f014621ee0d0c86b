"""A small, quiet, bounded client for the Visdom server's HTTP API.

vizlab builds every window's JSON itself (vizlab.report.window_packets), so all it needs from a client is
to POST JSON to a handful of endpoints. It does that with the standard library's http.client
instead of ``visdom.Visdom``, whose constructor waits ~6 s for a websocket it cannot open, whose
posts have no timeout, which prints a traceback on every failed call, logs through the root
logger, and whose import pulls in torch (2 s for `vizlab replay`). Here every request has a
timeout, nothing is printed, and every failure is one of two exceptions:

- ``VisdomUnavailable``: the server did not answer (refused, timed out, reset): retry later;
- ``VisdomRejected``: the server answered with an error (a bad request, a failed login).

Login (a server started with ``-enable_login``) uses VIZLAB_VISDOM_USER / VIZLAB_VISDOM_PASSWORD,
sent the way the visdom client sends them.

Every request carries ``Content-Type: application/json`` and ``X-Requested-With``: headers a
cross-site web page cannot send, which vizlab's server asks of every writing request
(vizlab.server.request_checks). Env names in URLs are percent-encoded.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

from vizlab.errors import VizlabError

DEFAULT_PORT = 8097
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 10.0
# vizlab's server refuses bodies over this (vizlab.server.request_rules.MAX_BODY_BYTES): a
# larger window is refused here, with a clear reason, instead of being cut off mid-send.
MAX_BODY_BYTES = 16 * 2**20
_HEADERS = {"Content-Type": "application/json", "X-Requested-With": "vizlab"}


class VisdomUnavailable(Exception):
    """The Visdom server did not answer."""


class VisdomRejected(Exception):
    """The Visdom server answered with an error (``status``: its HTTP status, if it answered)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class VisdomTarget:
    scheme: str
    host: str  # IPv6 literals in brackets
    port: int
    base_url: str  # "" or "/path"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.base_url}"


def parse_url(url: str) -> VisdomTarget:
    """``http://host:port/base`` -> VisdomTarget. No scheme means http; no port means 8097
    (443 for https). Raises VizlabError for anything that is not such a URL."""
    text = (url or "").strip()
    parsed = urlparse(text if "://" in text else "http://" + text)
    try:
        port = parsed.port
    except ValueError:
        raise VizlabError(f"bad Visdom URL {url!r}: the port is not a number from 1 to 65535") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise VizlabError(f"bad Visdom URL {url!r}; expected something like http://localhost:8097")
    if port is None:
        port = 443 if parsed.scheme == "https" else DEFAULT_PORT
    host = parsed.hostname
    host = f"[{host}]" if ":" in host else host
    return VisdomTarget(parsed.scheme, host, port, parsed.path.rstrip("/"))


def credentials() -> tuple[str | None, str | None]:
    """(user, password) from VIZLAB_VISDOM_USER / VIZLAB_VISDOM_PASSWORD, or (None, None)."""
    user = os.environ.get("VIZLAB_VISDOM_USER") or None
    password = os.environ.get("VIZLAB_VISDOM_PASSWORD") or None
    if user and not password:
        raise VizlabError("VIZLAB_VISDOM_USER is set but VIZLAB_VISDOM_PASSWORD is not")
    return user, (password if user else None)


class VisdomClient:
    """POSTs JSON to one Visdom server over one kept-alive connection (http.client: a request
    costs a tenth of what it costs through requests). ``timeout`` is (connect, read) seconds and
    may be changed between calls. Not thread-safe: one client per thread."""

    def __init__(self, target: VisdomTarget,
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT)):
        self.target = target
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._cookie: str | None = None  # the login cookie, once logged in

    def post(self, endpoint: str, msg: dict[str, Any]) -> str:
        """The answer's text. Raises VisdomUnavailable or VisdomRejected."""
        try:  # a NaN would reach browsers as invalid JSON and break the page
            body = json.dumps(msg, allow_nan=False).encode()
        except ValueError:
            raise VisdomRejected("not sent: it holds NaN or infinity") from None
        if len(body) > MAX_BODY_BYTES:
            raise VisdomRejected(f"not sent: {len(body):,} bytes is more than the server takes "
                                 f"({MAX_BODY_BYTES:,})")
        status, reason, text = self._post(endpoint, body)
        if status == 401:
            raise VisdomRejected("the server asks for a login: set VIZLAB_VISDOM_USER and "
                                 "VIZLAB_VISDOM_PASSWORD")
        if status != 200:
            raise VisdomRejected(f"Visdom answered {status} {reason or 'error'} "
                                 f"to {endpoint.split('/')[0]}", status)
        return text

    def login(self, user: str, password: str) -> None:
        """Log in as the visdom client does: the password's SHA-256, answered with a cookie."""
        body = {"username": user, "password": hashlib.sha256(password.encode()).hexdigest()}
        status, reason, _ = self._post("", json.dumps(body).encode())
        if status == 429:
            raise VisdomRejected(f"login to Visdom as {user!r} refused for now: {reason}")
        if status != 200 or self._cookie is None:
            raise VisdomRejected(f"login to Visdom as {user!r} failed ({status})")

    @property
    def cookie(self) -> str | None:
        """The login cookie, once logged in (the websocket sends it too)."""
        return self._cookie

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _post(self, endpoint: str, body: bytes) -> tuple[int, str, str]:
        headers = dict(_HEADERS)
        if self._cookie:
            headers["Cookie"] = self._cookie
        path = f"{self.target.base_url}/{endpoint}"
        for attempt in (1, 2):
            fresh = self._conn is None
            try:
                conn = self._connect()
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read().decode("utf-8", "replace")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if not fresh and attempt == 1:
                    continue  # the server closed a kept-alive connection: once more, anew
                raise VisdomUnavailable(_reason(exc)) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise VisdomUnavailable(_reason(exc)) from None
            cookies = [c.split(";", 1)[0] for c in resp.headers.get_all("Set-Cookie") or ()]
            if cookies:
                self._cookie = "; ".join(cookies)
            if resp.will_close:
                self.close()
            return resp.status, resp.reason, text
        raise AssertionError("unreachable")

    def _connect(self) -> http.client.HTTPConnection:
        connect_timeout, read_timeout = self.timeout
        if self._conn is None:
            host = self.target.host.strip("[]")
            cls = (http.client.HTTPSConnection if self.target.scheme == "https"
                   else http.client.HTTPConnection)
            conn = cls(host, self.target.port, timeout=connect_timeout)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        self._conn.sock.settimeout(read_timeout)
        return self._conn


def connect(target: VisdomTarget | str, env: str, *,
            timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT)) -> VisdomClient:
    """A client for the server, after one round trip (which creates ``env``) that proves it
    answers. Raises VisdomUnavailable (no answer) or VisdomRejected (login refused, error)."""
    if isinstance(target, str):
        target = parse_url(target)
    user, password = credentials()
    client = VisdomClient(target, timeout)
    if user:
        client.login(user, password)
    try:
        client.post(env_path(env), {"eid": env})
    except VisdomRejected as exc:
        # A login-only server refuses a client that did not log in: Visdom 0.2.4's own server
        # with a bare 400, 0.3's with 401.
        if user or not any(s in str(exc) for s in ("400 Bad Request", "401 Unauthorized")):
            raise
        raise VisdomRejected("the server asks for a login: set VIZLAB_VISDOM_USER and "
                             "VIZLAB_VISDOM_PASSWORD") from None
    return client


def env_path(env: str) -> str:
    """The endpoint of an env's page: ``env/<name>``, the name percent-encoded."""
    return "env/" + quote(env, safe="")


def _reason(exc: BaseException) -> str:
    """Why a request failed, in a few words."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, (ConnectionError, http.client.HTTPException)):
        return "connection lost"
    return str(exc) or type(exc).__name__


# -- the few calls vizlab makes ----------------------------------------------------------------

def send(viz: VisdomClient, msg: dict[str, Any], endpoint: str = "events") -> str:
    return viz.post(endpoint, msg)


def draw(viz: VisdomClient, env: str, win: str, packet: dict[str, Any]) -> None:
    """Create or replace window ``win`` with a packet built in vizlab.report.window_packets."""
    viz.post("events", {**packet, "win": win, "eid": env})


def close_window(viz: VisdomClient, env: str, win: str) -> None:
    viz.post("close", {"win": win, "eid": env})


def save_env(viz: VisdomClient, env: str) -> None:
    """Write the env to the server's env directory, so a server restart keeps it."""
    viz.post("save", {"data": [env], "eid": env})


def window_digest(viz: VisdomClient, env: str, win: str) -> str | None:
    """A digest of a window's JSON as the server holds it, or None when the window (or env) is
    gone. From ``win_data``, which Visdom 0.2.4 and 0.3 both answer (0.3 removed ``win_hash``)."""
    try:
        answer = viz.post("win_data", {"win": win, "eid": env})
    except VisdomRejected:  # visdom answers 500 for a window or env it does not hold
        return None
    return hashlib.sha256(answer.encode()).hexdigest()


def window_data(viz: VisdomClient, env: str, win: str | None = None) -> dict:
    """A window's JSON (or every window of the env, by id, when ``win`` is None)."""
    return json.loads(viz.post("win_data", {"win": win, "eid": env}))


def env_names(viz: VisdomClient) -> list[str]:
    return json.loads(viz.post("env_state", {}))


def delete_env(viz: VisdomClient, env: str) -> None:
    viz.post("delete_env", {"eid": env})
