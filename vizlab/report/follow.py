"""Following run logs that are still being written: `vizlab compare` over existing runs.

``LogTail`` reads the complete lines a growing ``events.jsonl`` gained since the last read (a
line still being written waits for its end). ``follow`` polls a set of tails until every run has
ended: its log says so (``run_ended``), or it has not grown for ``stale_after`` seconds (a run
killed without a last word; its log cannot say). Logs are someone else's files: lines are parsed
one by one, malformed ones skipped, and one read takes at most ``MAX_READ`` bytes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from vizlab.events import Event, RunEnded, event_from_dict
from vizlab.report.runlog import EVENTS_FILE

MAX_READ = 16 * 1024 * 1024
MAX_LINE = 64 * 1024 * 1024  # a longer "line" is not a vizlab event: dropped
POLL_SECONDS = 0.5


class LogTail:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / EVENTS_FILE
        self.offset = 0
        self._partial = b""
        self.ended: RunEnded | None = None
        self.more = False  # the last read stopped at MAX_READ: read again at once

    def _mtime(self) -> float:
        try:
            return os.stat(self.path).st_mtime
        except OSError:
            return 0.0

    def read(self) -> list[Event]:
        """The events of the complete lines written since the last read."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read(MAX_READ)
        except OSError:
            return []
        self.more = len(chunk) == MAX_READ
        if not chunk:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" after a complete last line
        if len(self._partial) > MAX_LINE:
            self._partial = b""
        events = []
        for line in lines:
            try:
                record = json.loads(line)
                if isinstance(record, dict):
                    events.append(event_from_dict(record))
            except (ValueError, TypeError):
                continue
        for event in events:
            if isinstance(event, RunEnded):
                self.ended = event
        return events

    def stale(self, stale_after: float) -> bool:
        """No run_ended, everything read, and no write for ``stale_after`` seconds."""
        return (self.ended is None and not self.more
                and time.time() - self._mtime() > stale_after)


def follow(tails: dict, on_events: Callable[[object, list[Event]], None], stale_after: float,
           stopped: Callable[[], bool] = lambda: False, poll: float = POLL_SECONDS) -> list:
    """Read every tail (keyed by anything) until each has ended or gone stale, or ``stopped()``.
    ``on_events(key, events)`` gets each batch. Returns the keys that went stale."""
    active = dict(tails)
    stale = []
    while True:
        for key, tail in list(active.items()):
            events = tail.read()
            if events:
                on_events(key, events)
            if tail.ended is not None:
                del active[key]
            elif tail.stale(stale_after):
                stale.append(key)
                del active[key]
        if not active or stopped():
            return stale
        if not any(tail.more for tail in active.values()):
            time.sleep(poll)
