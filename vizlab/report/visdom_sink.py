"""The Visdom sink: a live dashboard that never slows training and, with a run log, loses no data.

``handle()`` runs on the training thread and only appends to a bounded queue (well under a
microsecond). A background thread owns everything else: it folds events into a ``Dashboard``
and, about every ``flush_interval`` seconds (at once after an epoch), makes sure the run log is
on disk, then redraws the windows that changed; heavy ones (images, tables, heatmaps) at most
every ``heavy_interval`` seconds. It saves the env at epoch ends and at close.

Curve windows are replaced whole, never appended to: each holds at most 2,000 points per trace,
and Visdom 0.2.4 replaces such a window about ten times faster than it appends to it (an append
deep-copies the window and diffs it: 144 ms against 12 ms at 2,000 points, on this machine).

When the server does not answer, the sink warns once, keeps folding events, retries with backoff
and, when the server answers again, redraws every window from the run log. Before each flush a
``Sentinel`` (vizlab.report.sentinel) checks that the server still holds what was drawn: a server
restarted in between gets the same full redraw.

A full queue (the thread stuck behind a slow server) drops events: with a run log (``log_path``)
every window is redrawn from it later, so nothing is lost; without one (your own training loop)
the windows miss them, and the sink says so in one warning line.

With an ``inbox`` (vizlab.control) the sink is also the dashboard's door for steering: a third
thread listens to Visdom's websocket (vizlab.report.visdom_events) and puts the control pane's
commands (vizlab.report.control_pane) for this env into the inbox; the run answers with a Control
event, and the pane is drawn again at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from vizlab.events import Event
from vizlab.report import visdom_client as vc
from vizlab.report.dashboard import Dashboard
from vizlab.report.sentinel import Sentinel
from vizlab.term import warn

MAX_QUEUE = 10_000
RECENT = 512  # events kept to re-apply after a rebuild from a log that lags behind
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
# A server that has never answered yet may be starting (the one `vizlab run` just launched):
# for this long after the sink's start it is retried every QUIET_RETRY seconds, without a warning.
QUIET_START, QUIET_RETRY = 8.0, 0.2
FLUSH_BUDGET = 0.02  # the share of wall time flushes may take (they space out beyond it)


class _OutOfTime(Exception):
    """close()'s time limit ran out."""


class VisdomSink:
    """Streams events to one Visdom env. See the module docstring for the guarantees.

    ``log_path`` is the run's events.jsonl (the redraw source after an outage or a full queue;
    without it, events dropped from a full queue are lost, with one warning); ``flush_log``
    pushes the run log to disk and is called, from the sink's thread, before every flush.
    ``board`` replaces the run dashboard with another model of the same shape (``apply``,
    ``pane``, ``WINDOWS``, ``LIGHT``, ``closed``, ``control_win``, ``command_from_update``,
    ``refresh_control``), e.g. the comparison's; with no log it redraws from memory.
    Flushes come every ``flush_interval`` seconds, or further apart when they would take more
    than ``flush_budget`` of the time; and at once after an epoch or a steering command.
    ``inbox`` (a vizlab.control.Inbox) receives the commands of this env's control pane. A
    server that does not answer within ``quiet_start`` seconds of the sink's start gets a warning;
    until then the sink waits for it silently (close() too, within its time limit).
    """

    def __init__(self, url: str | None = None, env: str = "main",
                 log_path: Path | str | None = None, flush_interval: float = 1.0,
                 heavy_interval: float = 3.0, flush_log: Callable[[], None] | None = None,
                 close_timeout: float = 5.0, max_queue: int = MAX_QUEUE,
                 flush_budget: float = FLUSH_BUDGET, board=None, inbox=None,
                 quiet_start: float = QUIET_START):
        from vizlab.config import default_visdom_url

        self.url = url or default_visdom_url()
        self.env = env
        self._target = vc.parse_url(self.url)  # a bad URL is the user's error: raise it now
        vc.credentials()
        self.log_path = Path(log_path) if log_path is not None else None
        self.flush_interval, self.heavy_interval = flush_interval, heavy_interval
        self.close_timeout, self.flush_budget = close_timeout, flush_budget
        self._flush_log = flush_log
        self._max_queue = max_queue
        # Shared with the training thread (deque appends and pops are atomic).
        self._queue: deque = deque()
        self._overflow = False
        self._wake = threading.Event()
        self._stopping = self._closed = False
        self._close_status = "finished"
        self._deadline = float("inf")
        # Owned by the background thread.
        self._board = board if board is not None else Dashboard(env)
        self._recent: deque = deque(maxlen=RECENT)
        self._viz = None
        self._dirty: set[str] = set()
        self._drawn: set[str] = set()
        self._sentinel = Sentinel()
        self._resync = self._epoch_flush = self._save_due = False
        self._next_flush = self._retry_at = 0.0
        self._last_heavy = float("-inf")
        self._backoff = BACKOFF_FIRST
        self._warned: set[str] = set()
        self._retried: set[str] = set()  # windows (and "save") a server error refused once: tried again
        self._quiet_until = time.monotonic() + quiet_start  # until the server first answers
        # Counters for tests and benchmarks: seconds spent connecting (and redrawing), flushing,
        # and the CPU seconds of both; events handled, and how many of the first handled are
        # drawn (and saved) with nothing left to send: a condition to wait on.
        self.stats = {"flushes": 0, "redraws": 0, "requests": 0, "dropped": 0,
                      "connect_s": 0.0, "flush_s": 0.0, "cpu_s": 0.0, "handled": 0, "drawn": 0}
        self._inbox, self._pane_stale, self.listener = inbox, False, None
        self._thread = threading.Thread(target=self._run, name=f"vizlab-visdom[{env}]",
                                        daemon=True)
        self._thread.start()
        if inbox is not None:
            from vizlab.report.visdom_events import EventListener

            self.listener = EventListener(self._target, self._browser_event,
                                          name=f"vizlab-visdom-events[{env}]").start()

    # -- the training thread's side ----------------------------------------------------------

    def handle(self, event: Event) -> None:
        """Queue one event; never blocks, never raises, never touches the network."""
        if self._closed:
            return
        if len(self._queue) < self._max_queue:
            self._queue.append(event)
        else:  # the thread is stuck: drop, and rebuild from the run log later (if there is one)
            self._overflow = True
            self.stats["dropped"] += 1
        self.stats["handled"] += 1  # after the append: the thread's drain then sees the event
        if event.kind in ("epoch_end", "control"):
            self._wake.set()

    def _browser_event(self, message: dict) -> None:
        """On the listener's thread: a command from this env's control pane into the inbox."""
        win = getattr(self._board, "control_win", None)  # a str: safe to read from here
        if win is None:
            return
        command = self._board.command_from_update(
            message, self.env, origin=f"dashboard ({self._target.url}, env {self.env})")
        if command is not None:
            self._inbox.put(command)
        elif message.get("eid") == self.env and message.get("target") == win \
                and message.get("event_type") in ("PropertyUpdate", "close"):
            # An edit of a row that only shows state (undo it), or the pane closed in the page
            # (the door must stay open): draw it again.
            self._pane_stale = True
            self._wake.set()

    def close(self, status: str = "finished") -> None:
        """Send what is left (within ``close_timeout`` seconds), save the env, stop the thread.
        Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._close_status = status
        self._deadline = time.monotonic() + self.close_timeout
        self._stopping = True
        if self.listener is not None:
            self.listener.close()
        self._wake.set()
        self._thread.join(self.close_timeout + 0.5)

    # -- the background thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.clear()
            stopping = self._stopping  # read first: every event queued before close is drained
            handled = self.stats["handled"]  # every one of these is queued (or dropped) by now
            try:
                self._drain()
                if stopping:
                    self._dirty |= self._board.closed(self._close_status)
                t0, c0 = time.perf_counter(), time.thread_time()
                if self._viz is None:
                    if stopping or time.monotonic() >= self._retry_at:
                        self._connect(stopping)
                        self.stats["connect_s"] += time.perf_counter() - t0
                elif stopping or self._epoch_flush or time.monotonic() >= self._next_flush:
                    self._flush(stopping)
                    self.stats["flush_s"] += time.perf_counter() - t0
                self.stats["cpu_s"] += time.thread_time() - c0
                if self._viz is not None and not (self._dirty or self._save_due or self._resync):
                    self.stats["drawn"] = handled
            except _OutOfTime:
                if self._quiet_until:  # close() ran out of time before the server ever answered
                    self._quiet_until = 0.0
                    self._lost(TimeoutError("no answer yet"), "not reachable")
            except Exception as exc:  # a bug must not kill the thread and let the queue grow
                self._warn_once("bug", f"the Visdom dashboard hit an error ({exc!r}); "
                                       f"the run log is complete: `vizlab replay` redraws it")
            if stopping:
                return self._disconnect()
            until = self._retry_at if self._viz is None else self._next_flush
            self._wake.wait(min(self.flush_interval, max(0.02, until - time.monotonic())))

    def _drain(self) -> None:
        q, board = self._queue, self._board
        while q:
            event = q.popleft()
            self._recent.append(event)
            try:
                self._dirty |= board.apply(event)
            except Exception:
                self._warn_once("event", f"ignored a malformed {event.kind} event")
            if event.kind == "epoch_end":
                self._epoch_flush = self._save_due = True
            elif event.kind == "control":  # show the answer on the control pane at once
                self._epoch_flush = True
        if self._pane_stale:
            self._pane_stale = False
            refresh = getattr(board, "refresh_control", None)
            if refresh is not None:
                self._dirty |= refresh()
                self._epoch_flush = True
        if self._overflow:
            self._overflow = False
            self._resync = self.log_path is not None
            if self.log_path is None:
                self._warn_once("dropped", f"the Visdom dashboard ({self.env}) fell behind and "
                                f"dropped {self.stats['dropped']} events so far: its windows miss "
                                "them (give VisdomSink a run log, log_path=, to have them "
                                "redrawn)")

    def _connect(self, final: bool) -> None:
        while True:
            try:
                self._viz = vc.connect(self._target, self.env, timeout=self._timeouts(final))
                break
            except vc.VisdomUnavailable as exc:
                if time.monotonic() < self._quiet_until:  # perhaps still starting: no warning
                    if not final:
                        self._retry_at = time.monotonic() + QUIET_RETRY
                        return None
                    # close(): keep trying within its time limit (_timeouts ends it)
                    time.sleep(min(QUIET_RETRY, max(0.0, self._deadline - time.monotonic())))
                    continue
                self._quiet_until = 0.0
                return self._lost(exc, "not reachable")
            except vc.VisdomRejected as exc:
                self._quiet_until = 0.0
                self._retry_at = time.monotonic() + BACKOFF_MAX
                return self._warn_once("rejected", f"Visdom at {self._target.url}: {exc}; "
                                                   "training goes on without the dashboard")
        self._quiet_until = 0.0
        self._redraw(final)
        if self._viz is not None:
            self._backoff = BACKOFF_FIRST

    def _lost(self, exc: Exception, what: str) -> None:
        self._disconnect()
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        where = f" ({self.log_path.parent})" if self.log_path is not None else ""
        self._warn_once("down", f"Visdom at {self._target.url} {what} ({exc}); training goes on, "
                                f"retrying in the background; the run log{where} keeps every "
                                f"event (`vizlab replay` redraws it)")

    def _disconnect(self) -> None:
        if self._viz is not None:
            self._viz.close()
            self._viz = None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warn(message)

    def _timeouts(self, final: bool) -> tuple[float, float]:
        if not final:
            return vc.CONNECT_TIMEOUT, vc.READ_TIMEOUT
        left = self._deadline - time.monotonic()
        if left <= 0.05:
            raise _OutOfTime()
        return min(vc.CONNECT_TIMEOUT, left), left

    def _call(self, final: bool, fn, *args):
        """One request, bounded by close()'s deadline at the end."""
        self._viz.timeout = self._timeouts(final)
        self.stats["requests"] += 1
        return fn(self._viz, self.env, *args)

    def _flush_run_log(self) -> None:
        # The dashboard must never show what the run log lacks.
        if self._flush_log is not None:
            try:
                self._flush_log()
            except Exception:
                pass  # the run-log sink reports its own failures on the training thread

    def _redraw(self, final: bool) -> None:
        """Replace every window, from the run log when there is one."""
        self.stats["redraws"] += 1
        self._flush_run_log()
        if self.log_path is not None and self.log_path.is_file():
            from vizlab.report.replay import rebuild

            self._board = rebuild(self.log_path.parent, self._recent, self.env)
            if final:
                self._board.closed(self._close_status)
        self._resync = False
        self._dirty = set(self._board.WINDOWS)
        self._drawn = set(self._board.WINDOWS)  # so that stale windows with nothing to show get closed
        self._last_heavy = float("-inf")
        self._save_due = True
        self._sentinel.forget()
        self._flush(final)

    def _flush(self, final: bool) -> None:
        now = time.monotonic()
        self._next_flush = now + self.flush_interval
        self._epoch_flush = False
        redraws = self.stats["redraws"]
        self._flush_now(now, final)
        if self.stats["redraws"] == redraws:
            # Budget: regular flushes (our thread, and the server answering) take at most this
            # share of the time, however slow the machine or large the windows.
            cost = time.monotonic() - now
            self._next_flush = max(self._next_flush, now + min(cost / self.flush_budget, 10.0))

    def _flush_now(self, now: float, final: bool) -> None:
        heavy_due = final or now - self._last_heavy >= self.heavy_interval
        board = self._board
        todo = [w for w in board.WINDOWS if w in self._dirty and (heavy_due or w in board.LIGHT)]
        if not (todo or self._save_due or self._resync):
            return  # nothing new: no request at all
        try:
            if self._resync:
                return self._redraw(final)
            self._flush_run_log()
            if not self._sentinel.intact(lambda win: self._call(final, vc.window_digest, win)):
                return self._redraw(final)  # a restarted server lost what we drew
            written = [w for w in todo if self._send_window(w, final) and w in self._drawn]
            if heavy_due:
                self._last_heavy = now
            saved = (self._save_due or final) and self._save(final)  # epoch ends, redraws, close
            try:
                self._sentinel.keep(written, saved, self._board,
                                    lambda win: self._call(final, vc.window_digest, win),
                                    lambda win, packet: self._call(final, vc.draw, win, packet))
            except vc.VisdomRejected:
                self._sentinel.forget()
            self.stats["flushes"] += 1
        except vc.VisdomUnavailable as exc:
            self._lost(exc, "stopped answering")

    def _save(self, final: bool) -> bool:
        """Save the env on the server's disk; True if it did."""
        try:
            self._call(final, vc.save_env)
        except vc.VisdomRejected as exc:
            if not self._server_error_once("save", exc):
                self._save_due = False
                self._warn_once("save", f"Visdom refused to save the env {self.env} ({exc})")
            return False
        self._save_due = False
        self._retried.discard("save")
        return True

    def _server_error_once(self, what: str, exc: vc.VisdomRejected) -> bool:
        """A server error may be the server going down mid-request: True the first time for
        ``what`` (try it again at the next flush; an outage is then reported as one)."""
        if (exc.status or 0) >= 500 and what not in self._retried:
            self._retried.add(what)
            return True
        return False

    def _send_window(self, win: str, final: bool) -> bool:
        """Replace (or close) one window; True if a request was sent."""
        self._dirty.discard(win)
        pane = self._board.pane(win)
        try:
            if pane is not None:
                self._call(final, vc.draw, win, pane.packet)
                self._drawn.add(win)
            elif win in self._drawn:
                self._call(final, vc.close_window, win)
                self._drawn.discard(win)
            else:
                return False
        except vc.VisdomRejected as exc:
            if self._server_error_once(win, exc):
                self._dirty.add(win)
            else:
                self._warn_once("win:" + win, f"Visdom refused the {win} window ({exc})")
            return False
        self._retried.discard(win)
        return True

