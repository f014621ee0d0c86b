"""What every request to vizlab's Visdom server must show before Visdom sees it.

Modelled on jupyter_server's checks. A web page the user opens anywhere can make the browser send
requests to 127.0.0.1:8097: cross-site POSTs (a ``text/plain`` form, ``fetch`` with ``mode:
"no-cors"``) need no permission, and a DNS-rebinding page talks to the server under its own
host name. Visdom checks neither. So, applied to each of Visdom's handlers by ``guard``:

- every request (page, API, static file, websocket): the Host header names a loopback address,
  the address the server listens on, a name given with ``--allow-host``, or any IP address when
  it listens on every interface (DNS rebinding needs a host name);
- every writing request (any method but GET/HEAD/OPTIONS): no Origin, or the server's own
  (``Sec-Fetch-Site``, where the browser sends it, is same-origin), and something a cross-site
  page cannot send without a CORS preflight, which this server never grants:
  ``Content-Type: application/json`` (vizlab's client, Visdom's page's fetches) or an
  ``X-Requested-With`` header (jQuery adds it to the page's same-origin posts, whose JSON it
  labels as a form); Visdom 0.3's env upload, a multipart form, needs the same Origin instead;
- with ``--login``: a valid login cookie (vizlab.server.login) on every writing request but the
  login itself, and on every websocket;
- bodies: the checks run as soon as the headers are in (the body is streamed), so a refused
  request is never read; a body is at most ``MAX_BODY_BYTES`` (a login ``LOGIN_BODY_BYTES``),
  is a JSON object, and its env names are valid (vizlab.server.env_names); a request Visdom
  fails on (a wrong type, a missing key) is a 400, logged on one line, without a traceback;
- websocket messages: the same JSON and env-name checks; a bad message is dropped.
"""

from __future__ import annotations

import inspect
import ipaddress
import json
import logging
import re
from dataclasses import dataclass

import tornado.httputil
import tornado.web
import tornado.websocket

from vizlab.server import env_names
from vizlab.server import login as logins

log = logging.getLogger("vizlab.server.requests")

# The largest window vizlab sends is a comparison's train-loss plot: one trace of up to 2,000
# points per variant, 56 KB each; 32 variants (compare's default cap) make 1.8 MB, and 16 MiB
# holds about 290 (--max-variants).
MAX_BODY_BYTES = 16 * 2**20
LOGIN_BODY_BYTES = 4096
MAX_WIN_ID = 256
# Visdom fails on these when a request has the wrong shape (a list for an object, a missing key)
SHAPE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, AssertionError,
                RecursionError)

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_HOST_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::\d{1,5})?$")


@dataclass(frozen=True)
class Policy:
    """Which Host names the server answers to, and its login (None: no login)."""

    hosts: frozenset[str] = frozenset({"localhost"})
    any_ip: bool = False  # listening on every interface: any IP address is a fine Host
    login: logins.Login | None = None

    @classmethod
    def build(cls, listen_host: str, allow_hosts=(), credentials=None) -> Policy:
        """The policy for a server listening on ``listen_host``; ``allow_hosts``: the names
        given with --allow-host; ``credentials``: (user, password) for --login."""
        any_ip = listen_host in ("", "0.0.0.0", "::")
        names = {"localhost", *(normalize_host(h) for h in allow_hosts)}
        if not any_ip:
            names.add(normalize_host(listen_host))
        login = logins.Login(*credentials) if credentials else None
        return cls(frozenset(names), any_ip, login)


def normalize_host(name: str) -> str:
    """A host name or address as compared: lower case, no brackets or final dot, IPs canonical."""
    name = name.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def is_host_name(name: str) -> bool:
    """Whether ``name`` can be a Host header's name: an IP address or letters, digits, .-_"""
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return bool(re.fullmatch(r"[A-Za-z0-9._-]+", name)) and name.strip(".") != ""


def host_allowed(policy: Policy, host_header: str) -> bool:
    match = _HOST_RE.match(host_header or "")
    if not match:
        return False
    name = normalize_host(match["v6"] or match["name"])
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name in policy.hosts
    return address.is_loopback or policy.any_ip or name in policy.hosts


def same_origin(origin: str, host_header: str) -> bool:
    """Whether an Origin header names the server as the browser reached it (scheme aside)."""
    netloc = origin.split("://", 1)[1] if "://" in origin else ""
    return bool(netloc) and netloc.rstrip("/").lower() == (host_header or "").lower()


def cross_site_problem(headers, host_header: str, form_upload: bool = False) -> str | None:
    """Why a writing request may come from another site's page; None when it cannot."""
    origin = headers.get("Origin")
    if origin is not None and not same_origin(origin, host_header):
        return f"cross-origin request from {origin[:100]} refused"
    if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return "cross-site request refused"
    ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or headers.get("X-Requested-With"):
        return None
    if form_upload and origin is not None and ctype == "multipart/form-data":
        return None
    return "a writing request needs Content-Type: application/json or X-Requested-With"


def payload_problem(handler_name: str, payload: object, path_args=()) -> str | None:
    """Why a request's JSON cannot be right for this Visdom handler; None when it may be.
    Only what breaks the server (env names, ids used as keys); Visdom checks the rest."""
    if not isinstance(payload, dict):
        return "the request body must be a JSON object"
    for key in ("eid", "prev_eid"):
        if payload.get(key) is not None:
            problem = env_names.problem(payload[key])
            if problem:
                return problem
    for key, limit in (("win", MAX_WIN_ID), ("sid", MAX_WIN_ID)):
        value = payload.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= limit):
            return f"{key} must be a string of at most {limit} characters"
    if handler_name == "SaveHandler":
        names = payload.get("data")
        if not isinstance(names, list):
            return "save: data must be a list of env names"
        return next(filter(None, map(env_names.problem, names)), None)
    if handler_name == "DataHandler" and "data" in payload and not isinstance(payload["data"], str):
        return "win_data: data must be a string of JSON"
    if handler_name.endswith("SocketWrap") and payload.get("message") is not None:
        return message_problem(payload["message"])  # the page's polling mode: socket messages
    if handler_name in ("EnvHandler", "CompareHandler") and path_args:
        # The page asks for envs by name here; names older envs may have (made before these
        # checks) must still open: only refuse what leaves the env dir.
        names = path_args[0].split("+") if handler_name == "CompareHandler" else path_args[:1]
        if any(env_names.env_file(".", n) is None for n in names if n):
            return "env name leaves the env dir"
    return None


def message_problem(message: object) -> str | None:
    """Why a websocket message must be dropped; None when Visdom may have it."""
    if not isinstance(message, (str, bytes)):
        return "not text"
    try:
        msg = json.loads(message)
    except (ValueError, RecursionError):
        return "not JSON"
    if not isinstance(msg, dict):
        return "not a JSON object"
    data = msg.get("data")
    for holder in (msg, data if isinstance(data, dict) else {}):
        for key in ("eid", "prev_eid"):
            if holder.get(key) is not None and env_names.problem(holder[key]):
                return env_names.problem(holder[key])
    return None


def parse_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise tornado.web.HTTPError(400, reason="the request body is not JSON") from None


def _policy(handler) -> Policy:
    return handler.settings["vizlab_policy"]


def _refuse_foreign_host(handler) -> None:
    host = handler.request.headers.get("Host", "127.0.0.1")  # HTTP/1.0: no Host, not a browser
    if not host_allowed(_policy(handler), host):
        raise tornado.web.HTTPError(403, reason="unknown Host (use --allow-host)")


class _Plain:
    """Errors as one short line of text: no page, no traceback in the answer or the log."""

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}\n")


class _HostOnly(_Plain):
    """For the static files: public front-end code, but only under an allowed Host."""

    def prepare(self):
        _refuse_foreign_host(self)
        return super().prepare()


class _RequestChecks(_Plain):
    """Mixed into each of Visdom's HTTP handlers (made streaming: see the module docstring)."""

    _visdom_name = ""

    def get_current_user(self):
        return logins.current_user(self, _policy(self).login)

    def prepare(self):
        _refuse_foreign_host(self)
        self._chunks, self._size = [], 0
        if self.request.method in _SAFE_METHODS:
            return super().prepare()
        problem = cross_site_problem(self.request.headers, self.request.headers.get("Host", ""),
                                     form_upload=self._visdom_name == "UploadEnvHandler")
        if problem:
            raise tornado.web.HTTPError(403, reason=problem)
        is_login = self._visdom_name == "IndexHandler"
        if _policy(self).login and not is_login and not self.current_user:
            raise tornado.web.HTTPError(401, reason="login required")
        limit = LOGIN_BODY_BYTES if is_login else MAX_BODY_BYTES
        try:
            length = int(self.request.headers.get("Content-Length", "0"))
        except ValueError:
            raise tornado.web.HTTPError(400, reason="bad Content-Length") from None
        if length > limit:
            raise tornado.web.HTTPError(413, reason=f"body over {limit} bytes")
        self.request.connection.set_max_body_size(limit)
        return super().prepare()

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    async def post(self, *args, **kwargs):
        body = self.request.body = b"".join(self._chunks)
        self._chunks = []
        ctype = self.request.headers.get("Content-Type", "")
        if self._visdom_name == "IndexHandler":
            return await self._login(body)
        if ctype.lower().startswith("multipart/form-data"):
            tornado.httputil.parse_body_arguments(ctype, body, self.request.body_arguments,
                                                  self.request.files, self.request.headers)
        else:
            problem = payload_problem(self._visdom_name, parse_json(body), self.path_args)
            if problem:
                raise tornado.web.HTTPError(400, reason=problem)
        try:
            result = super().post(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result
        except SHAPE_ERRORS as exc:
            log.warning("400 %s: %s: %s", self.request.path, type(exc).__name__,
                        str(exc)[:200])
            raise tornado.web.HTTPError(400, reason="malformed request") from None

    async def _login(self, body: bytes) -> None:
        login = _policy(self).login
        if login is None:
            return  # no login asked: a client that logs in anyway is let in
        payload = parse_json(body)
        problem = logins.credentials_problem(payload)
        if problem:
            raise tornado.web.HTTPError(400, reason=problem)
        try:
            ok = await login.attempt(payload["username"], payload["password"])
        except logins.TooManyAttempts:
            self.set_header("Retry-After", str(int(login.delay())))
            raise tornado.web.HTTPError(429, reason="too many login attempts") from None
        if not ok:
            log.warning("failed login as %r from %s", payload["username"][:64],
                        self.request.remote_ip)
            raise tornado.web.HTTPError(400, reason="wrong user name or password")
        logins.set_cookie(self, login)


class _SocketChecks:
    """Mixed into each of Visdom's websocket handlers."""

    def get_current_user(self):
        return logins.current_user(self, _policy(self).login)

    def prepare(self):
        _refuse_foreign_host(self)
        if _policy(self).login and not self.current_user:
            raise tornado.web.HTTPError(401, reason="login required")
        return super().prepare()

    def check_origin(self, origin):
        return same_origin(origin, self.request.headers.get("Host", ""))

    def on_message(self, message):
        problem = message_problem(message)
        if problem:
            log.warning("websocket message dropped: %s", problem)
            return None
        try:
            return super().on_message(message)
        except SHAPE_ERRORS as exc:
            log.warning("websocket message dropped: %s: %s", type(exc).__name__, str(exc)[:200])
            return None


def guard(cls):
    """``cls`` (one of Visdom's handlers, or the static file handler) with the checks."""
    if issubclass(cls, tornado.websocket.WebSocketHandler):
        return type(cls.__name__, (_SocketChecks, cls), {})
    if issubclass(cls, tornado.web.StaticFileHandler):
        return type(cls.__name__, (_HostOnly, cls), {})
    checked = type(cls.__name__, (_RequestChecks, cls), {"_visdom_name": cls.__name__})
    return tornado.web.stream_request_body(checked)


def settings(policy: Policy) -> dict:
    """tornado Application settings the checks need."""
    return {"vizlab_policy": policy, "websocket_max_message_size": MAX_BODY_BYTES}


def listen_limits() -> dict:
    """Keyword arguments for ``Application.listen``: no body beyond the largest allowed."""
    return {"max_body_size": MAX_BODY_BYTES, "max_buffer_size": MAX_BODY_BYTES + 2**16}
