"""Process and port helpers for vizlab's background server (standard library only).

Kept apart from vizlab.server.lifecycle so that module reads as the server's life cycle, and these as the
operating-system details it needs: ports, detached children, /proc.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from vizlab.errors import VizlabError


def check_port_free(host: str, port: int) -> None:
    """Raise VizlabError (one line) unless host:port can be listened on, as tornado would."""
    try:
        addrs = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise VizlabError(f"--host {host}: {exc.strerror}") from None
    for family, type_, proto, _, addr in addrs:
        with socket.socket(family, type_, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tornado binds
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind(addr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise VizlabError(f"port {port} on {host} is taken by another program; "
                                      "choose another with --port") from None
                if not (exc.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6):
                    raise VizlabError(f"cannot listen on {host}:{port} ({exc.strerror})") \
                        from None  # (no IPv6 here: tornado skips ::1 the same way)


def spawn_detached(args: list[str], log: Path, cwd: Path) -> tuple[int, int]:
    """Start ``args`` detached (own session, reparented to init so it is never left a zombie
    of a long-lived parent such as a training run), output appended to ``log``.
    Returns (pid, log size before)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    launcher = ("import subprocess, sys; "
                "log = open(sys.argv[1], 'ab'); "
                "p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, "
                "stderr=subprocess.STDOUT, start_new_session=True); "
                "print(p.pid)")
    env = dict(os.environ, PYTHONPATH=pythonpath(), PYTHONUNBUFFERED="1")
    out = subprocess.run([sys.executable, "-c", launcher, str(log), *args],
                         capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                         cwd=cwd, timeout=60, check=False)
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise VizlabError(f"could not launch the server: {out.stderr.strip()[-300:]}")
    return int(out.stdout.strip()), offset


def terminate_if(pid: int, marker: str) -> None:
    """SIGTERM ``pid`` if its command line holds ``marker`` (a reused pid is never signalled)."""
    if marker in cmdline(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def pythonpath() -> str:
    """vizlab importable in a child process even when run from a clone that is not installed."""
    root = str(Path(__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH")
    return root + (os.pathsep + rest if rest else "")


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts connections on host:port."""
    host = "localhost" if host in ("", "0.0.0.0", "::") else host
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's: cmdline() decides whether it is ours
    try:  # an exited process its parent has not reaped yet (a zombie) is gone for us
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        pass
    try:  # no /proc (macOS)
        return subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True,
                              text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)
