"""The terminal door: commands through the run dir, so they work with --no-visdom and over SSH.

`vizlab control RUN ...` writes one small JSON file into ``RUN/control/`` (atomically: a hidden
temporary name, then a rename), and waits for the answer: the Control event carrying its request
id in the run log. In the run, a ``Watcher`` thread looks into that folder a few times a second,
moves each file's command into the inbox and deletes the file. The folder exists only while a
run that takes commands is running, so a missing folder means nobody listens.

Command files are untrusted input (anyone who can write the run dir can drop one): size-bounded,
plain files only, parsed by the same vocabulary as the dashboard's. The folder itself must be a
real directory: a symlink in its place is neither written through nor emptied.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import secrets
import socket
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vizlab.control import MAX_TEXT, ControlError, Inbox, parse_command, refused
from vizlab.errors import VizlabError
from vizlab.run_files import CONTROL_DIR
from vizlab.term import warn

POLL = 0.2  # seconds between looks into the control folder
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
MAX_FILE = 4096  # bytes; a command file is a few dozen
_NAME = re.compile(r"^[0-9A-Za-z-]{1,80}\.json$")


def origin_here() -> str:
    """Who is asking, for the log: user@host pid N."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (some containers): the uid says enough
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


# -- the `vizlab control` side -------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    id: str
    path: Path  # the command file, until the run takes it


def submit(run_dir: Path, text: str) -> Request:
    """Check ``text`` and drop it into the run's control folder."""
    parse_command(text)  # a bad command never reaches the run dir
    folder = Path(run_dir) / CONTROL_DIR
    if not _real_dir(folder):
        raise VizlabError(f"{run_dir} is not taking commands: it is not running, or it was "
                          "started with --no-control")
    request = f"{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}"
    body = json.dumps({"command": text, "request": request, "origin": origin_here()})
    tmp, path = folder / f".{request}.tmp", folder / f"{request}.json"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.replace(tmp, path)  # the watcher never sees half a file
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise VizlabError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    return Request(request, path)


def _real_dir(path: Path) -> bool:
    """A directory, not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def withdraw(request: Request) -> bool:
    """Take back a command nobody picked up; True if it was still waiting."""
    try:
        request.path.unlink()
        return True
    except OSError:
        return False


class LogTail:
    """The run log's lines written after this object was made (whole lines only)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.offset = path.stat().st_size
        except OSError:
            self.offset = 0
        self._partial = b""

    def records(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(1 << 22)
        except OSError:
            return []
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            if b'"control"' not in line and b'"run_ended"' not in line:
                continue  # step chunks and images: not even parsed
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out


# -- the run's side ------------------------------------------------------------------------------

class Watcher:
    """Moves command files from ``run_dir/control/`` into the inbox, on its own thread."""

    def __init__(self, run_dir: Path, inbox: Inbox, poll: float = POLL):
        self.folder = Path(run_dir) / CONTROL_DIR
        self.inbox, self.poll = inbox, poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vizlab-control", daemon=True)

    def start(self) -> Watcher:
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError as exc:
            warn(f"`vizlab control` cannot reach this run: {self.folder}: {exc.strerror or exc}")
            return self
        if not _real_dir(self.folder):
            warn(f"`vizlab control` cannot reach this run: {self.folder} is not a directory")
            return self
        self._empty()  # files left by a run that died are not for this one
        self._thread.start()
        return self

    def _empty(self) -> None:
        try:
            for left in os.scandir(self.folder):
                try:
                    os.unlink(left.path)  # a link is removed, never what it points to
                except OSError:
                    pass
        except OSError:
            pass

    def close(self) -> None:
        """Stop looking; remove the folder, so `vizlab control` knows nobody listens."""
        self._stop.set()
        if self._thread.ident is None:
            return  # never started: the folder (if any) is not ours to empty
        self._thread.join(5)
        self._empty()
        try:
            self.folder.rmdir()
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                names = sorted(e.name for e in os.scandir(self.folder) if _NAME.match(e.name))
            except OSError:
                continue
            for name in names:
                self._take(self.folder / name)

    def _take(self, path: Path) -> None:
        data = b""
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):  # no links, no fifos: plain files only
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
                try:
                    data = os.read(fd, MAX_FILE + 1)
                finally:
                    os.close(fd)
            path.unlink()
        except OSError:
            return
        try:
            record = json.loads(data.decode("utf-8")) if len(data) <= MAX_FILE else None
        except (UnicodeDecodeError, ValueError):
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("command"), str):
            warn(f"ignored a malformed command file {path.name} in {self.folder}")
            return
        text = record["command"][:MAX_TEXT]
        request = record.get("request") if isinstance(record.get("request"), str) else ""
        origin = record.get("origin") if isinstance(record.get("origin"), str) else ""
        origin = f"vizlab control ({origin})" if origin else "vizlab control"
        try:
            command = parse_command(text, source="terminal", origin=origin, request=request)
        except ControlError as exc:
            command = refused(text, str(exc), source="terminal", origin=origin, request=request)
        self.inbox.put(command)


@contextmanager
def watching(run_dir: Path, inbox: Inbox | None):
    """The terminal door open for the duration of the block (nothing when ``inbox`` is None)."""
    if inbox is None:
        yield
        return
    watcher = Watcher(run_dir, inbox).start()
    try:
        yield
    finally:
        watcher.close()
