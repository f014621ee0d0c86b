"""Shared fixtures: one real Visdom server per test session, on a free loopback port."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# Keep torch to one thread per test process: the suite shares 2 cores with the server.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# What vizlab caches (measured layouts, ...) goes to a throwaway dir, never the user's cache.
_CACHE = tempfile.mkdtemp(prefix="vizlab-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)


def env_list(viz) -> list[str]:
    """Every env on the server, through a visdom client (its session, hence its login).
    Visdom 0.3.0's own get_env_list() sends the client's env along, and the server then answers
    with that env's windows instead."""
    url = f"{viz.server}:{viz.port}{viz.base_url}/env_state"
    return json.loads(viz._handle_post(url, json.dumps({})))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> bool:
    """True once something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_for(predicate, timeout: float = 30.0) -> bool:
    """True once ``predicate()`` is; False after ``timeout`` s (a hang guard, not a speed claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def wait_until(predicate, timeout: float = 60.0, what="condition"):
    """``predicate()``'s first true value; AssertionError naming ``what`` (text, or a callable
    that says what was seen) after ``timeout`` s, a hang guard, not a speed claim."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def vizlab(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI's entry point in-process: (exit status, stdout, stderr)."""
    from vizlab.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@dataclass
class VisdomServer:
    port: int
    env_dir: Path
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, env: str = "main"):
        return visdom_client(self.port, env)


def visdom_client(port: int, env: str = "main", **kw):
    """Visdom's own Python client, sending the header vizlab's server asks of every writing
    request (one a cross-site page cannot send; see README, Security)."""
    import visdom

    class Client(visdom.Visdom):
        def _handle_post(self, url, data=None):
            return self.session.post(url, data=data or {},
                                     headers={"X-Requested-With": "visdom"}).text

    return Client(server="http://127.0.0.1", port=port, env=env, use_incoming_socket=False,
                  raise_exceptions=True, **kw)


def start_visdom(env_dir: Path, port: int | None = None) -> VisdomServer:
    """vizlab's own server process (debug off, loopback only, envs saved under env_dir)."""
    port = port or free_port()
    log = open(env_dir / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "vizlab.server.main", "--port", str(port),
                             "--env-dir", str(env_dir), "--state-dir", str(env_dir)],
                            stdout=log, stderr=subprocess.STDOUT)
    server = VisdomServer(port, env_dir, proc)
    if not wait_port(port):
        proc.kill()
        raise RuntimeError(f"visdom server did not start; see {env_dir / 'server.log'}")
    return server


def stop_visdom(server: VisdomServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def wheel_members(tmp_path_factory) -> dict[str, bytes]:
    """{name: bytes} of the wheel built from a copy of the repo (the build writes build/ and
    *.egg-info), built once per session."""
    import shutil
    import zipfile

    repo = Path(__file__).resolve().parents[1]
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    everywhere = shutil.ignore_patterns("*.egg-info", "__pycache__", ".pytest_cache")

    def ignore(folder, names):  # build outputs at the top only: npm packages have dist/ folders
        top = {".git", ".venv", "runs", "build", "dist"} if Path(folder) == repo else set()
        return everywhere(folder, names) | (top & set(names))

    shutil.copytree(repo, src, ignore=ignore)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(tmp / "wheels"), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp / "wheels").glob("vizlab-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture(scope="session")
def visdom_server(tmp_path_factory):
    """One real Visdom server for the whole session; tests use their own env names."""
    server = start_visdom(tmp_path_factory.mktemp("visdom-envs"))
    yield server
    stop_visdom(server)


def processes_mentioning(text: str) -> list[int]:
    """The pids whose command line contains ``text`` (processes a test must not leave behind)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(
                    errors="replace"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found
