"""The Visdom server process that `vizlab server` runs: ``python -m vizlab.server.main ...``.

Visdom's own Application, with what vizlab changes at start-up, all through tornado's extension
points (settings, handler subclasses; no edits to visdom's files, no CDN download):

- tornado debug mode off (visdom forces it on: autoreload, tracebacks sent to browsers);
- the page works with tornado >= 6.5 (see ``_StaticFiles``);
- page and scripts from vizlab's offline static directory (``vizlab.server.assets``);
- websockets accept only same-origin browsers (visdom accepts any web site's page);
- every request checked before visdom sees it (the rules of ``vizlab.server.request_rules``:
  Host, Origin, body size, JSON, env names; vizlab's own login, ``vizlab.server.login``), applied
  by ``vizlab.server.request_checks`` in one place (``_Settings``);
- login from VIZLAB_VISDOM_USER / VIZLAB_VISDOM_PASSWORD, cookie secret kept in the state dir
  (and with login off, a client that logs in anyway is let in, not failed);
- envs that live only in memory are written to the env dir when the server stops, each on its
  own (``vizlab.server.env_names.save_envs``).
- ``--readonly``: visdom's read-only mode, in which pages send nothing back (no steering).

What differs between Visdom 0.2.4 and 0.3.x is in ``vizlab.server.visdom_compat``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import posixpath
import secrets
import signal
import sys
import time
from pathlib import Path

import tornado.web
import tornado.websocket

from vizlab.errors import VizlabError
from vizlab.server import assets, env_names, visdom_compat
from vizlab.server import request_checks as checks
from vizlab.server.lifecycle import PASSWORD_VAR, USER_VAR, client_credentials
from vizlab.server.request_rules import Policy

log = logging.getLogger("vizlab.server.lifecycle")


class _StaticFiles(tornado.web.StaticFileHandler):
    """tornado's static handler, plus the one URL visdom's index.html builds outside /static/.

    The page asks ``static_url("../user/style.css")``. tornado < 6.5 returned
    ``/static/../user/style.css`` unchecked, which the browser resolves to ``/user/style.css``,
    served by visdom's UserSettingsHandler (the user's custom CSS). tornado >= 6.5 refuses paths
    leaving the static directory with a 403, and that 403 fails the whole page. Returning the
    resolved URL keeps tornado's check for every real static file.
    """

    @classmethod
    def make_static_url(cls, settings, path, include_version=True):
        if path.startswith("../"):
            return posixpath.normpath(settings.get("static_url_prefix", "/static/") + path)
        return super().make_static_url(settings, path, include_version=include_version)


class _SameOriginSocket:
    """Mixed into visdom's websocket handlers: tornado's same-origin check instead of visdom's
    ``return True``, so a web page from another site cannot read or drive the dashboard.
    Clients that send no Origin (the Python client may) are still accepted, as tornado does."""

    def check_origin(self, origin):
        return tornado.websocket.WebSocketHandler.check_origin(self, origin)


class _LoginOffAcceptsClients:
    """Mixed into visdom's IndexHandler. With login off, visdom answers a login POST with a 500
    (it reads credentials that do not exist), so a client holding VIZLAB_VISDOM_USER /
    VIZLAB_VISDOM_PASSWORD fails against a server started without --login. With login off
    there is nothing to protect: accept it."""

    def post(self, *args, **kwargs):
        if not self.login_enabled:
            return
        return super().post(*args, **kwargs)


class _Settings(tornado.web.Application):
    """Sits between visdom's Application and tornado's in the MRO, so it sees (and fixes) the
    handlers and settings visdom's ``__init__`` passes up, including ``debug=True``."""

    vizlab_settings: dict = {}

    def __init__(self, handlers, **settings):
        settings.update(self.vizlab_settings)
        settings.update(debug=False, autoreload=False, serve_traceback=False,
                        compiled_template_cache=True, static_hash_cache=True,
                        static_handler_class=checks.guard(_StaticFiles))
        handlers = [(pattern, checks.guard(_with_fixes(cls)), *rest)
                    for pattern, cls, *rest in visdom_compat.extra_handlers() + handlers]
        super().__init__(handlers, **settings)


def _with_fixes(cls):
    from visdom.server.handlers.web_handlers import IndexHandler

    if issubclass(cls, tornado.websocket.WebSocketHandler):
        return type(cls.__name__, (_SameOriginSocket, cls), {})
    if cls is IndexHandler:
        return type(cls.__name__, (_LoginOffAcceptsClients, cls), {})
    return cls


def build_app(port: int, env_dir: Path, static: Path,
              credentials: tuple[str, str] | None = None,
              cookie_secret: str | None = None, policy: Policy | None = None,
              readonly: bool = False):
    """visdom's Application, configured as described in the module docstring. ``policy``:
    the request checks' (default: listening on 127.0.0.1, login from ``credentials``)."""
    from visdom.server.app import Application

    policy = policy or Policy.build("127.0.0.1", (), credentials)

    class VizlabVisdomApp(Application, _Settings):
        vizlab_settings = {"static_path": str(static), "template_path": str(static),
                           "cookie_secret": cookie_secret or secrets.token_hex(32),
                           **checks.settings(policy)}

    # Login is switched on after construction: visdom's constructor would read the cookie
    # secret from ~/.visdom/COOKIE_SECRET; ours comes from the state dir (settings above).
    app = VizlabVisdomApp(port=port, base_url="", env_path=str(env_dir), readonly=readonly)
    if policy.login:  # the login itself is vizlab's (vizlab.server.login), not visdom's
        app.login_enabled = True
    return app


def save_memory_envs(app) -> list[str]:
    """Write envs that exist only in memory (or were loaded and changed) to the env dir.

    Visdom writes an env only when a client saves it; without this a stop loses the rest.
    Envs still lazily on disk are skipped (serialising an unloaded one would write ``null``).
    """
    return env_names.save_envs(app.state, app.env_path, log)


def cookie_secret(state_dir: Path) -> str:
    """A secret kept across restarts (logged-in browsers stay logged in), owner-readable only."""
    path = state_dir / "cookie_secret"
    if not path.is_file():
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another server wrote it meanwhile
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    return path.read_text().strip()


async def serve(args) -> int:
    state_dir = Path(args.state_dir)
    env_dir = Path(args.env_dir)
    static = assets.ensure_static(Path(args.assets_dir) if args.assets_dir else None,
                                  progress=log.info)
    credentials = None
    if args.login:
        credentials = client_credentials()
        if credentials is None:
            raise VizlabError(f"--login needs {USER_VAR} and {PASSWORD_VAR} set")
    policy = Policy.build(args.host, args.allow_host, credentials)
    app = build_app(args.port, env_dir, static, credentials, cookie_secret(state_dir), policy,
                    args.readonly)
    try:
        server = app.listen(args.port, address=args.host, **checks.listen_limits())
    except OSError as exc:
        raise VizlabError(f"cannot listen on {args.host}:{args.port} ({exc.strerror})") from None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pid_file = Path(args.pid_file) if args.pid_file else None
    if pid_file:
        _write_pid_file(pid_file, args, env_dir)
    log.info("serving http://%s:%d (envs in %s)", args.host, args.port, env_dir)
    try:
        await stop.wait()
    finally:
        server.stop()
        saved = save_memory_envs(app)
        log.info("stopped; saved envs: %s", ", ".join(saved) or "none")
        if pid_file:
            _remove_pid_file(pid_file)
    return 0


def _write_pid_file(path: Path, args, env_dir: Path) -> None:
    info = {"pid": os.getpid(), "host": args.host, "port": args.port, "env_dir": str(env_dir),
            "started": time.time(), "login": bool(args.login)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)  # readers never see half a file


def _remove_pid_file(path: Path) -> None:
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m vizlab.server.main",
                                description="vizlab's Visdom server (use `vizlab server start`).")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--env-dir", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--pid-file")
    p.add_argument("--assets-dir")
    p.add_argument("--login", action="store_true")
    p.add_argument("--allow-host", action="append", default=[],
                   help="a host name browsers may use to reach the server (repeatable)")
    p.add_argument("--readonly", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # tornado logs every request at INFO: one line per training step would bloat the log.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    args = parse_args(argv)
    try:
        visdom_compat.block_unused_imports()  # before anything imports visdom
        return asyncio.run(serve(args))
    except VizlabError as exc:
        log.error("%s", exc)
        sys.stderr.write(f"vizlab: error: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
