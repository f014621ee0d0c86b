"""Visdom's handlers, guarded: ``guard`` makes each apply vizlab.server.request_rules before
Visdom sees a request.

The checks run as soon as the headers are in (the body is streamed), so a refused request is never
read; a request Visdom fails on (a wrong type, a missing key) is a 400, logged on one line,
without a traceback; a bad websocket message is dropped. Errors are one short line of text.
"""

from __future__ import annotations

import inspect
import json
import logging

import tornado.httputil
import tornado.web
import tornado.websocket

from vizlab.server import login as logins
from vizlab.server.request_rules import (
    LOGIN_BODY_BYTES,
    MAX_BODY_BYTES,
    SAFE_METHODS,
    Policy,
    cross_site_problem,
    host_allowed,
    message_problem,
    payload_problem,
    same_origin,
)

log = logging.getLogger("vizlab.server.requests")
# Visdom fails on these when a request has the wrong shape (a list for an object, a missing key)
SHAPE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, AssertionError,
                RecursionError)


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
        if self.request.method in SAFE_METHODS:
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
