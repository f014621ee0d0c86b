"""The events of a distributed comparison's runs, from every rank to rank 0, and rank 0's few
words back, through torch.distributed's own key-value store (the c10d store every process group
has: under torchrun, the TCPStore its agent hosts). No collective is involved, so no rank ever
waits for another while it trains.

Mailbox layout (under the prefix ``vizlab-compare/``):

- ``ev/R/K``: the K-th batch of rank R's events (JSON: ``{"events": [[variant index, event
  dict], ...], "done": bool, "failure": str | null}``), written about every ``INTERVAL`` seconds
  from R's training loop; rank 0 reads and deletes them in order between its own steps;
- ``beat/R``: a counter rank R bumps at every tick: the ranks that wait at the end tell a slow
  rank from a lost one by it (``VIZLAB_DIST_TIMEOUT`` seconds without a beat: lost);
- ``stop``: set by the first rank asked to stop (Ctrl-C): every rank then stops at its next step
  boundary and checkpoints;
- ``cmd/R/K``: the K-th steering command (vizlab.control, JSON) rank 0 passes on to rank R: the
  comparison's doors listen on rank 0 alone, and a ``drop VARIANT`` goes to the ranks that train
  that variant's runs (vizlab.compare.steering);
- ``end``: rank 0's word that the comparison is summed up, with its status (and whether every
  rank is alive to meet at a last barrier: rank 0 may host the store, and must not leave before
  the others have read the word).

Images and histograms (sample sets, predictions) stay in the runs' own logs: the comparison's
dashboard and terminal do not draw them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, fields

from vizlab.control import Command, Inbox
from vizlab.events import Event, RunEnded, event_from_dict

INTERVAL = 0.5  # seconds between a rank's batches (and beats)
POLL = 0.1  # seconds between looks while waiting at the end
HEAVY = frozenset({"sample_set", "predictions", "histograms"})


class Relay:
    """One rank's end of the mailbox. Rank 0 passes ``deliver``: it is called with (variant
    index, event) for every event of another rank's runs, in each rank's order.

    Steering: ``local`` is this rank's comparison inbox (what its runs are told); rank 0 also
    passes ``doors``, the inbox its dashboard pane and control folder fill, and ``route``, which
    names the ranks a command is for."""

    def __init__(self, store, rank: int, world_size: int, stop, timeout: float,
                 deliver: Callable[[int, Event], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, interval: float = INTERVAL,
                 local: Inbox | None = None, doors: Inbox | None = None,
                 route: Callable[[Command], list[int]] | None = None):
        self.store, self.rank, self.world_size = store, rank, world_size
        self.stop, self.timeout, self.deliver = stop, timeout, deliver
        self.local, self.doors, self.route = local, doors, route
        self._commands_sent = {r: 0 for r in range(1, world_size)}  # rank 0: per rank
        self._commands_taken = 0  # other ranks: the next command to take
        self.clock, self.interval = clock, interval
        self._out: list[list] = []
        self._sent = 0  # batches written
        self._next = {r: 0 for r in range(1, world_size)}  # rank 0: next batch per rank
        self.done: set[int] = set()  # rank 0: the ranks that sent their last batch
        self.failures: dict[int, str] = {}  # rank 0: rank -> how it failed
        self.skipped = 0  # rank 0: malformed entries dropped
        self._stop_known = False
        self._last_tick = float("-inf")

    @classmethod
    def for_group(cls, group, stop, deliver=None, local=None, doors=None, route=None) -> Relay:
        from torch.distributed import PrefixStore
        from torch.distributed.distributed_c10d import _get_default_store

        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # a restart starts afresh
        return cls(PrefixStore(f"vizlab-compare/{attempt}", _get_default_store()), group.rank,
                   group.world_size, stop, group.timeout, deliver, local=local, doors=doors,
                   route=route)

    # -- every rank -----------------------------------------------------------------------------
    def post(self, index: int, event: Event) -> None:
        """Queue one event of this rank's run ``index`` (other ranks than 0)."""
        if event.kind in HEAVY:
            return
        self._out.append([index, event.to_dict()])
        if isinstance(event, RunEnded):  # a run's end goes out at once
            self.flush()

    def tick(self, now: bool = False) -> None:
        """Called from the training loop (after each read-back): at most every ``INTERVAL``
        seconds (or ``now``), send what is queued, beat, pass a stop on, and (rank 0) take in
        what came."""
        t = self.clock()
        if not now and t - self._last_tick < self.interval:
            return
        self._last_tick = t
        self.flush()
        self.store.add(f"beat/{self.rank}", 1)
        self._sync_stop()
        self._pass_commands()
        if self.rank == 0:
            self.drain()

    def flush(self, done: bool = False, failure: str | None = None) -> None:
        if not self._out and not done:
            return
        batch = {"events": self._out, "done": done, "failure": failure}
        self.store.set(f"ev/{self.rank}/{self._sent}", json.dumps(batch))
        self._sent += 1
        self._out = []

    def _sync_stop(self) -> None:
        if self._stop_known:
            return
        if self.stop.requested:
            self.store.set("stop", str(self.rank))
            self._stop_known = True
        elif self.store.check(["stop"]):
            self.stop.requested = True  # every engine of this rank stops after its step
            self._stop_known = True

    def _pass_commands(self) -> None:
        """Rank 0: the doors' commands to the ranks they are for; others: take theirs."""
        if self.rank == 0:
            if self.doors is None or not self.doors.pending:
                return
            for command in self.doors.take():
                for r in self.route(command):
                    if r == 0:
                        self.local.put(command)
                    else:
                        key = f"cmd/{r}/{self._commands_sent[r]}"
                        self.store.set(key, json.dumps(asdict(command)))
                        self._commands_sent[r] += 1
            return
        while self.local is not None:
            key = f"cmd/{self.rank}/{self._commands_taken}"
            if not self.store.check([key]):
                return
            raw = self.store.get(key)
            self.store.delete_key(key)
            self._commands_taken += 1
            command = _command(raw)
            if command is not None:
                self.local.put(command)

    # -- rank 0 ---------------------------------------------------------------------------------
    def drain(self) -> None:
        """Deliver every batch that has arrived, each rank's in order."""
        for r in self._next:
            while True:
                key = f"ev/{r}/{self._next[r]}"
                if not self.store.check([key]):
                    break
                raw = self.store.get(key)
                self.store.delete_key(key)
                self._next[r] += 1
                self._take(r, raw)

    def _take(self, rank: int, raw: bytes) -> None:
        try:
            batch = json.loads(raw)
            items = batch["events"]
        except (ValueError, TypeError, KeyError):
            self.skipped += 1
            return
        for item in items if isinstance(items, list) else ():
            try:
                index, data = item
                if not isinstance(index, int):
                    raise ValueError("no run index")
                event = event_from_dict(data)
            except (ValueError, TypeError):
                self.skipped += 1
                continue
            if self.deliver is not None:
                self.deliver(index, event)
        if batch.get("done"):
            self.done.add(rank)
            if isinstance(batch.get("failure"), str):
                self.failures[rank] = batch["failure"]

    def wait_for_ranks(self) -> None:
        """Take in events until every other rank has sent its last batch. Raises when one has
        not beaten for ``timeout`` seconds (lost, or stuck)."""
        watch = _BeatWatch(self.store, self.timeout, self.clock)
        while True:
            self.tick(now=True)
            waiting = [r for r in self._next if r not in self.done]
            if not waiting:
                return
            watch.check(waiting)
            time.sleep(POLL)

    def announce(self, status: str, together: bool) -> None:
        """The comparison is summed up: the other ranks may end, with this status; ``together``:
        every rank is alive and may meet at one last barrier (none failed)."""
        self.store.set("end", json.dumps({"status": status, "together": together}))

    # -- other ranks ----------------------------------------------------------------------------
    def wait_end(self) -> tuple[str, bool]:
        """After the last batch: wait for rank 0's word, beating meanwhile: (the comparison's
        status, whether every rank meets at a last barrier)."""
        watch = _BeatWatch(self.store, self.timeout, self.clock)
        while not self.store.check(["end"]):
            self.tick(now=True)
            watch.check([0])
            time.sleep(POLL)
        word = json.loads(self.store.get("end"))
        return str(word["status"]), bool(word["together"])


def _command(raw: bytes) -> Command | None:
    """A command as rank 0 wrote it (None if it is not one)."""
    try:
        data = json.loads(raw)
        return Command(**{f.name: data[f.name] for f in fields(Command)})
    except (ValueError, TypeError, KeyError):
        return None


class _BeatWatch:
    """Raises when a rank's beat counter has not moved for ``timeout`` seconds."""

    def __init__(self, store, timeout: float, clock):
        self.store, self.timeout, self.clock = store, timeout, clock
        self.seen: dict[int, tuple[int, float]] = {}

    def check(self, ranks) -> None:
        now = self.clock()
        for r in ranks:
            beats = self.store.add(f"beat/{r}", 0)
            last = self.seen.get(r)
            if last is None or last[0] != beats:
                self.seen[r] = (beats, now)
            elif now - last[1] > self.timeout:
                raise RuntimeError(f"timed out waiting for rank {r}: no word from it for "
                                   f"{self.timeout:g} s")
