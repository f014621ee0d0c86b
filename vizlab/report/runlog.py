"""The run log: every event as one JSON line in ``events.jsonl``, the durable record of a run.

It is the first sink in the fan-out, so whatever a dashboard shows, the log already holds. It
raises on I/O errors (a run whose record cannot be written should stop, not go on silently).

Reading a log back (``read_events``) treats it as untrusted input: only regular files are
opened (a FIFO named events.jsonl would block forever), lines are bounded in length, every
event is type-checked, and bad lines are counted and reported in one warning line per read;
only a torn last line (a killed run) is skipped silently.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from vizlab.errors import VizlabError
from vizlab.event_checks import MAX_LINE
from vizlab.events import Event, TrainSteps, event_from_dict
from vizlab.run_files import EVENTS_FILE
from vizlab.term import warn


class RunLogSink:
    def __init__(self, run_dir: Path, flush_every: float = 2.0):
        self.path = Path(run_dir) / EVENTS_FILE
        _drop_torn_tail(self.path)  # a resumed run's first line must not glue onto a torn one
        # O_NOFOLLOW: a symlink planted in a run dir never redirects the log elsewhere.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                         | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise VizlabError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._file = open(fd, "a", encoding="utf-8")
        self._flush_every = flush_every
        self._last_flush = time.monotonic()
        # The Visdom sink's thread calls flush() while training writes: text files are not
        # thread-safe.
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), separators=(",", ":")) + "\n"
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line)
        # Step chunks are frequent: flush them every few seconds; everything else at once.
        if not isinstance(event, TrainSteps) or time.monotonic() - self._last_flush >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Push written lines to the OS (other sinks call this before they draw)."""
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                self._last_flush = time.monotonic()

    def close(self, status: str = "finished") -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()


def _drop_torn_tail(path: Path) -> None:
    """End a log that does not end in a newline: a killed run's torn last line would otherwise
    swallow the next line appended (a resumed run's start). A torn line is cut off; a whole
    event that only lacks its newline gets one."""
    try:
        f = open_regular(path, "r+b")
    except FileNotFoundError:
        return
    with f:
        end = f.seek(0, os.SEEK_END)
        if end == 0 or (f.seek(end - 1), f.read(1))[1] == b"\n":
            return
        start = end  # of the last line: just after the previous newline
        while start > 0:
            size = min(start, 1 << 16)
            f.seek(start - size)
            cut = f.read(size).rfind(b"\n")
            if cut >= 0:
                start = start - size + cut + 1
                break
            start -= size
        whole = False
        if end - start <= MAX_LINE:
            f.seek(start)
            try:
                whole = isinstance(json.loads(f.read()), dict)
            except (ValueError, RecursionError):
                pass
        if whole:
            f.seek(end)
            f.write(b"\n")
        else:
            f.truncate(start)


def open_regular(path: Path, mode: str = "rb"):
    """Open ``path`` (binary) if it is a regular file; VizlabError for a FIFO, a device or a
    directory, without blocking on it. FileNotFoundError when it is missing."""
    # Never write through a symlink (a run dir from someone else may hold one).
    flags = os.O_RDONLY if mode == "rb" else os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise VizlabError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        mode_bits = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode_bits):
            what = ("a FIFO" if stat.S_ISFIFO(mode_bits) else "a directory"
                    if stat.S_ISDIR(mode_bits) else "a device"
                    if stat.S_ISCHR(mode_bits) or stat.S_ISBLK(mode_bits) else "a socket")
            raise VizlabError(f"{path} is {what}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


def read_json_object(path: Path, limit: int = 1 << 20) -> dict:
    """A small JSON object file (config.json, comparison.json). FileNotFoundError when missing;
    VizlabError (one line) for anything else wrong: not a regular file, too big, not JSON."""
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise VizlabError(f"{path} is over {limit} bytes; not a vizlab file")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise VizlabError(f"{path} is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(value, dict):
        raise VizlabError(f"{path} does not hold a JSON object")
    return value


class EventLog:
    """The events of one run log, read defensively; iterate it once.

    After iterating, ``bad`` is the number of lines skipped as bad (not JSON, an unknown kind,
    wrong field types, over MAX_LINE bytes) and ``problem`` says what was wrong with the first;
    a torn last line (no newline at the end of the file, and not a whole event) is skipped and
    not counted (``torn``). With ``warn_bad`` the bad lines get one warning line per read.
    ``kinds`` limits the read to lines naming one of those kinds (the others are not parsed).
    """

    def __init__(self, run_dir: Path, kinds: Iterable[str] | None = None, warn_bad: bool = True):
        self.path = Path(run_dir) / EVENTS_FILE
        self.kinds = None if kinds is None else tuple(f'"{k}"'.encode() for k in kinds)
        self.warn_bad = warn_bad
        self.bad = 0
        self.problem: str | None = None
        self.torn = False

    def __iter__(self) -> Iterator[Event]:
        with open_regular(self.path) as f:
            number = 0
            while True:
                line = f.readline(MAX_LINE + 1)
                if not line:
                    break
                number += 1
                if len(line) > MAX_LINE:
                    _skip_rest_of_line(f)
                    self._bad(number, f"over {MAX_LINE} bytes")
                    continue
                if self.kinds is not None and not any(k in line for k in self.kinds):
                    continue
                if not line.strip():
                    continue
                try:
                    yield event_from_dict(json.loads(line))
                except (ValueError, RecursionError) as exc:  # JSON errors are ValueErrors too
                    if not line.endswith(b"\n"):  # short of the limit: the file's end
                        self.torn = True  # the last line, cut short by a killed run
                    else:
                        self._bad(number, str(exc))
        if self.bad and self.warn_bad:
            more = f" (line {self.problem})" if self.problem else ""
            warn(f"{self.path}: skipped {self.bad} bad line{'s' if self.bad > 1 else ''}{more}")

    def _bad(self, number: int, reason: str) -> None:
        self.bad += 1
        if self.problem is None:
            self.problem = f"{number}: {reason[:120]}"


def _skip_rest_of_line(f) -> None:
    while True:
        chunk = f.readline(1 << 20)
        if not chunk or chunk.endswith(b"\n"):
            return


def read_events(run_dir: Path, kinds: Iterable[str] | None = None,
                warn_bad: bool = True) -> EventLog:
    """The events of a run in order (see EventLog): ``for event in read_events(run_dir)``."""
    return EventLog(run_dir, kinds, warn_bad)
