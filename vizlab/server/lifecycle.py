"""Start, stop and inspect vizlab's background Visdom server.

The server is ``python -m vizlab.server.main`` (see there for what it changes in Visdom). Its pid
file and log live in a state dir: ``$VIZLAB_STATE_DIR``, default ``$XDG_STATE_HOME/vizlab`` or
``~/.local/state/vizlab``; envs are saved under ``<state dir>/envs`` unless ``--env-dir`` says
otherwise. The server writes the pid file itself once it listens and removes it when it stops,
so a pid file names a serving process; before trusting one, vizlab checks that the process is
really that server (its command line names ``vizlab.server.main`` and this pid file), so a
reused pid is never signalled.

Light on purpose (standard library only): ``vizlab run`` imports it for ``ensure_server``.
"""

from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import json
import math
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from vizlab.errors import VizlabError
from vizlab.server.processes import (
    alive,
    answers,
    check_port_free,
    cmdline,
    pythonpath,
    spawn_detached,
    terminate_if,
    wait_gone,
)
from vizlab.term import warn

DEFAULT_PORT = 8097
DEFAULT_HOST = "127.0.0.1"
USER_VAR = "VIZLAB_VISDOM_USER"
PASSWORD_VAR = "VIZLAB_VISDOM_PASSWORD"
START_TIMEOUT = 60.0  # `vizlab server start`: visdom imports in ~1 s; slow disks need more
ENSURE_WAIT = 3.0  # ensure_server: never hold up training longer than this


def state_dir() -> Path:
    env = os.environ.get("VIZLAB_STATE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "vizlab"


def pid_file() -> Path:
    return state_dir() / "server.pid"


def log_file() -> Path:
    return state_dir() / "server.log"


def default_env_dir() -> Path:
    return state_dir() / "envs"


def client_credentials() -> tuple[str, str] | None:
    """(user, password) from VIZLAB_VISDOM_USER / VIZLAB_VISDOM_PASSWORD; None unless both set."""
    user, password = os.environ.get(USER_VAR), os.environ.get(PASSWORD_VAR)
    return (user, password) if user and password else None


@dataclass(frozen=True)
class ServerInfo:
    """What the pid file of a running vizlab server says."""

    pid: int
    host: str
    port: int
    env_dir: str
    started: float
    login: bool = False

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("", "0.0.0.0", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def uptime(self) -> float:
        return max(0.0, time.time() - self.started)


def running() -> ServerInfo | None:
    """The vizlab server of this state dir, if one runs; a stale pid file is removed."""
    path = pid_file()
    try:
        info = _server_info(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        _unlink(path)
        return None
    if not _is_our_server(info.pid, path):
        _unlink(path)
        return None
    return info


def _server_info(data) -> ServerInfo:
    """A pid file's JSON as ServerInfo; TypeError or ValueError when it is not one."""
    types = {"pid": int, "host": str, "port": int, "env_dir": str, "started": (int, float)}
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    for key, kind in types.items():
        if not isinstance(data.get(key), kind) or isinstance(data[key], bool):
            raise TypeError(f"{key}: not a {kind}")
    if not (0 < data["pid"] < 2**31 and 0 < data["port"] < 65536
            and math.isfinite(data["started"])):
        raise ValueError("pid, port or start time out of range")
    return ServerInfo(**{k: data[k] for k in types}, login=data.get("login") is True)


def start(port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, env_dir: Path | None = None,
          login: bool = False, assets_dir: Path | None = None,
          progress: Callable[[str], None] | None = None,
          allow_hosts: tuple[str, ...] = ()) -> tuple[ServerInfo, bool]:
    """Start the background server and wait until it serves; (info, already_running).

    Raises VizlabError for what the user can fix: port taken, missing credentials, no assets.
    """
    info = running()
    if info:
        return info, True
    args = _server_args(port, host, env_dir, login, assets_dir, progress, allow_hosts=allow_hosts)
    pid, log_offset = spawn_detached(args, log_file(), state_dir())
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = _ready(pid)
        if info:
            return info, False
        if not alive(pid):
            raise VizlabError(f"the server stopped at start-up: {_last_log_line(log_offset)} "
                              f"(log: {log_file()})")
        time.sleep(0.05)
    terminate_if(pid, "vizlab.server.main")
    raise VizlabError(f"the server did not answer within {START_TIMEOUT:.0f} s (log: {log_file()})")


def exec_foreground(port: int = DEFAULT_PORT, host: str = DEFAULT_HOST,
                    env_dir: Path | None = None, login: bool = False,
                    assets_dir: Path | None = None,
                    progress: Callable[[str], None] | None = None,
                    allow_hosts: tuple[str, ...] = ()) -> None:
    """Become the server (exec), logging to the terminal; Ctrl-C stops it.

    exec, not a call, so the process looks exactly like a background one to `status` and `stop`.
    """
    info = running()
    if info:
        raise VizlabError(f"vizlab's Visdom server already runs at {info.url} (pid {info.pid}); "
                          "stop it first with `vizlab server stop`")
    args = _server_args(port, host, env_dir, login, assets_dir, progress, allow_hosts=allow_hosts)
    os.environ["PYTHONPATH"] = pythonpath()
    sys.stdout.flush()  # exec drops unflushed output
    sys.stderr.flush()
    os.execv(sys.executable, args)


def stop(timeout: float = 10.0) -> ServerInfo | None:
    """Stop this state dir's server (SIGTERM, SIGKILL after ``timeout``); None if none ran."""
    info = running()
    if info is None:
        return None
    try:
        os.kill(info.pid, signal.SIGTERM)
        # It saves in-memory envs before exiting, so give it time before the hard kill.
        if not wait_gone(info.pid, timeout):
            os.kill(info.pid, signal.SIGKILL)
            wait_gone(info.pid, 5.0)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise VizlabError(f"cannot stop the server (pid {info.pid}): it belongs to another "
                          "user") from None
    _unlink(pid_file())
    return info


def list_envs(info: ServerInfo) -> tuple[list[str], bool]:
    """(env names, live): from the server when it answers, else the envs saved in its env dir."""
    try:
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        creds = client_credentials()
        if info.login and creds:  # visdom's login: the client sends the password's SHA-256
            digest = hashlib.sha256(creds[1].encode()).hexdigest()
            _post(opener, info.url + "/", {"username": creds[0], "password": digest})
        names = json.loads(_post(opener, info.url + "/env_state", {}))
        if not isinstance(names, list):
            raise ValueError("not a list of env names")
        return sorted(map(str, names)), True
    except (OSError, ValueError, http.client.HTTPException):
        try:
            return sorted(p.stem for p in Path(info.env_dir).glob("*.json")), False
        except OSError:
            return [], False


def ensure_server(url: str) -> str | None:
    """For `run`/`compare`: start a background server if ``url`` is the default local one and
    nothing answers there. Returns the URL to print when it started one, else None.

    The server listens on 127.0.0.1, with login when VIZLAB_VISDOM_USER / VIZLAB_VISDOM_PASSWORD
    are set (the client then logs in with them). Never raises (a dashboard problem must not stop
    training: it warns instead), tries once per process, and waits at most ENSURE_WAIT seconds:
    a server still laying its front-end files comes up a little later, which the Visdom sink
    has to tolerate anyway.
    """
    key = url.rstrip("/")
    if key in _ensured:
        return None
    _ensured.add(key)
    try:
        return _ensure(url)
    except Exception as exc:
        warn(f"could not start a local Visdom server ({exc}); training goes on without it")
        return None


_ensured: set[str] = set()


def _ensure(url: str) -> str | None:
    parsed = urlparse(url)
    if (parsed.scheme != "http" or parsed.hostname not in ("localhost", "127.0.0.1")
            or (parsed.port or 80) != DEFAULT_PORT or parsed.path not in ("", "/")):
        return None
    if answers(parsed.hostname, DEFAULT_PORT):
        return None
    info = running()
    if info:
        warn(f"vizlab's Visdom server runs at {info.url}, not {url}; pass --visdom-url {info.url}")
        return None
    from vizlab.server import assets

    if not assets.is_complete(assets.static_dir()):
        warn("first start: the Visdom server fetches its front-end files from the npm registry; "
             f"the dashboard comes up when they are in place (log: {log_file()})")
    args = _server_args(DEFAULT_PORT, DEFAULT_HOST, None, client_credentials() is not None,
                        None, None, lay_assets=False)  # the server lays them: keep this fast
    pid, log_offset = spawn_detached(args, log_file(), state_dir())
    deadline = time.monotonic() + ENSURE_WAIT
    while time.monotonic() < deadline:
        if _ready(pid):
            break
        if not alive(pid):
            if answers(parsed.hostname, DEFAULT_PORT):
                return None  # another process started one first
            warn(f"the Visdom server stopped at start-up: {_last_log_line(log_offset)} "
                 f"(log: {log_file()})")
            return None
        time.sleep(0.05)
    return f"http://localhost:{DEFAULT_PORT}"


def _server_args(port, host, env_dir, login, assets_dir, progress, lay_assets=True,
                 allow_hosts=()) -> list[str]:
    """Check what the user can get wrong (one-line errors), lay the assets, build the argv."""
    if not 0 < port < 65536:
        raise VizlabError(f"--port {port}: not a TCP port")
    if login and client_credentials() is None:
        raise VizlabError(f"--login needs {USER_VAR} and {PASSWORD_VAR} set in the environment")
    check_port_free(host, port)
    if lay_assets:
        from vizlab.server import assets

        assets.ensure_static(assets_dir, progress)
    env_dir = Path(env_dir) if env_dir else default_env_dir()
    env_dir.mkdir(parents=True, exist_ok=True)
    state_dir().mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "vizlab.server.main", "--port", str(port), "--host", host,
            "--env-dir", str(env_dir.resolve()), "--state-dir", str(state_dir().resolve()),
            "--pid-file", str(pid_file().resolve())]
    if login:
        args.append("--login")
    if assets_dir:
        args += ["--assets-dir", str(Path(assets_dir).resolve())]
    for name in allow_hosts:
        args += ["--allow-host", name]
    return args


def _ready(pid: int) -> ServerInfo | None:
    info = running()
    if info and info.pid == pid and answers(info.host, info.port):
        return info
    return None


def _is_our_server(pid: int, path: Path) -> bool:
    if not alive(pid):
        return False
    cmd = cmdline(pid)
    return "vizlab.server.main" in cmd and str(path.resolve()) in cmd


def _last_log_line(offset: int) -> str:
    try:
        with open(log_file(), "rb") as f:
            f.seek(offset)
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if ln.startswith("vizlab: error:")]
    line = (errors or [ln for ln in lines if ln] or ["no output"])[-1]
    return line.removeprefix("vizlab: error: ")


def _post(opener, url: str, body: dict) -> str:
    # The headers the server's request checks ask of a writing request (not a browser form).
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "X-Requested-With": "vizlab"})
    with opener.open(req, timeout=5) as resp:
        return resp.read().decode()


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
