"""The pieces one process of a distributed comparison needs besides the Comparison itself: the
runs rank 0 learns about only through their events, the CPU threads a rank takes, and a way to
finish the summary files before the launcher's SIGTERM lands."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vizlab.compare.comparison import Entry
from vizlab.compare.variants import Variant
from vizlab.events import EpochEnd, Event, RunEnded, RunStarted


class RemoteRuns:
    """Rank 0's record of the runs other ranks train, rebuilt from their relayed events exactly
    as a local run's entry is built from its own (vizlab.compare.comparison._Tap): every epoch's
    metrics, the end, the run dir and the parameter count. A run whose rank never said how it
    ended keeps ``ended`` None (a failure, to ``results``)."""

    def __init__(self, variants: Sequence[Variant], comparison_dir: Path, local: Sequence[int]):
        self.entries = {i: Entry(v, Path(comparison_dir) / v.slug)
                        for i, v in enumerate(variants) if i not in set(local)}
        self.ignored = 0  # events naming a run this record does not hold

    def observe(self, index: int, event: Event) -> bool:
        """Record one relayed event; False (and ignored) when ``index`` is not a remote run."""
        entry = self.entries.get(index)
        if entry is None:
            self.ignored += 1
            return False
        if isinstance(event, RunStarted):
            entry.run_dir, entry.params = Path(event.run_dir), event.params
        elif isinstance(event, EpochEnd):
            entry.epochs.append(event)
        elif isinstance(event, RunEnded):
            entry.ended = event
        return True

    def all(self) -> list[Entry]:
        return list(self.entries.values())


def rank_threads(requested: int | None, local_world_size: int, cores: int | None = None) -> int:
    """CPU threads for one rank: ``--threads`` when given, else the node's cores shared evenly by
    the ranks on it (torchrun's own default is a single thread per process)."""
    if requested:
        return requested
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, local_world_size))


def local_world_size(world_size: int) -> int:
    """Processes on this node (torchrun sets LOCAL_WORLD_SIZE)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
    except ValueError:
        return world_size


@contextmanager
def termination_deferred() -> Iterator[None]:
    """Hold a SIGTERM (the launcher stopping this rank because another one failed) until the
    block is done, then act on it: the summary files are written whole, not cut short. The
    launcher waits 30 s before it kills."""
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received and callable(previous):
            previous(signal.SIGTERM, None)
