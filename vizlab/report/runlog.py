"""The run log: every event as one JSON line in ``events.jsonl``, the durable record of a run.

It is the first sink in the fan-out, so whatever a dashboard shows, the log already holds. It
raises on I/O errors (a run whose record cannot be written should stop, not go on silently).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from vizlab.errors import VizlabError
from vizlab.events import Event, TrainSteps, event_from_dict
from vizlab.run_files import EVENTS_FILE


class RunLogSink:
    def __init__(self, run_dir: Path, flush_every: float = 2.0):
        self.path = Path(run_dir) / EVENTS_FILE
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


def read_events(run_dir: Path) -> Iterator[Event]:
    """The events of a run in order; a torn last line (a killed run) is skipped."""
    path = Path(run_dir) / EVENTS_FILE
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
                if isinstance(record, dict):
                    yield event_from_dict(record)
            except (json.JSONDecodeError, ValueError, TypeError):
                continue
