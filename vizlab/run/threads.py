"""How many CPU threads torch uses while training: fixed by ``--threads N``, else adaptive.

torch's thread pool collapses when another process takes one of its cores: on the 2-core machine
the MLP epoch went from 4.3 s to 11.1 s with its default 2 threads, against 4.4 s with 1 thread.
The adaptive policy therefore keeps measuring. At every read-back the engine reports how long its
last steps took; the policy keeps a recent per-step time for each thread count it has tried, and
now and then (and at once when the step time jumps against its own best) it tries the neighbouring
count for one stretch of steps, then keeps whichever is faster. A quiet machine pays one short
probe every ``probe_every`` seconds; a busy one drops to fewer threads within a probe or two, and
comes back when the other process goes. Wall time on the CPU is honest here: the steps are
synchronous, so no device sync is added.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MIN_STEPS = 8  # shorter stretches (an epoch's tail) say too little to judge by
JUMP = 1.5  # a step this much slower than the best seen at this count: look around at once
PROBE_EVERY = 15.0  # seconds between probes on a steady machine
FIRST_PROBE = 1.0  # seconds into training: a run started on a busy machine finds out soon
# At least this long between two probes, however jumpy the steps: on a busy machine the step time
# at the best count is noisy, and a probe of a count the contention collapses costs a stretch.
# Every probe that loses doubles the gap (up to PROBE_EVERY); a probe that wins resets it.
MIN_GAP = 2.0
EMA = 0.5  # weight of the newest stretch in a count's recent step time


def thread_counts(max_threads: int) -> list[int]:
    """The counts worth trying: max, max/2, max/4, ..., 1."""
    counts, n = [], max(1, max_threads)
    while n > 1:
        counts.append(n)
        n //= 2
    return counts + [1]


class FixedThreads:
    """``--threads N`` (or a device where CPU threads do not matter): set once, never changed."""

    def __init__(self, n: int | None = None):
        if n:
            import torch

            torch.set_num_threads(n)

    def observe(self, steps: int, seconds: float) -> None:
        pass


class AdaptiveThreads:
    """Picks torch's thread count by measuring step times (see the module docstring).

    ``set_threads`` and ``clock`` are torch.set_num_threads and time.monotonic; tests pass
    their own to drive the policy step by step.
    """

    def __init__(self, max_threads: int, set_threads: Callable[[int], None],
                 clock: Callable[[], float] = time.monotonic, probe_every: float = PROBE_EVERY,
                 first_probe: float = FIRST_PROBE, min_gap: float = MIN_GAP):
        self.counts = thread_counts(max_threads)
        self._set, self._clock = set_threads, clock
        self.probe_every, self.min_gap = probe_every, min_gap
        self.n = self.counts[0]
        self.recent: dict[int, float] = {}  # thread count -> recent seconds a step
        self.best: dict[int, float] = {}  # thread count -> best recent seconds a step
        self._probing_from: int | None = None
        self._next_probe = clock() + first_probe  # the first look around comes early
        self._last_probe = float("-inf")
        self._gap = min_gap
        self.switches = 0

    @classmethod
    def for_this_process(cls) -> AdaptiveThreads:
        import torch

        return cls(torch.get_num_threads(), torch.set_num_threads)

    def observe(self, steps: int, seconds: float) -> None:
        """The engine trained ``steps`` steps in ``seconds`` at the current thread count."""
        if steps < MIN_STEPS or len(self.counts) == 1:
            return
        per_step = seconds / steps
        n = self.n
        fresh = n not in self.recent or self._probing_from is not None  # a probe: older is stale
        self.recent[n] = per_step if fresh else EMA * per_step + (1 - EMA) * self.recent[n]
        self.best[n] = min(self.best.get(n, per_step), self.recent[n])
        now = self._clock()
        if self._probing_from is not None:  # the probe's stretch is in: keep the faster count
            home, self._probing_from = self._probing_from, None
            if self.recent[home] <= self.recent[n]:
                self._use(home)
                self._gap = min(2 * self._gap, self.probe_every)
            else:
                self._gap = self.min_gap
            self._next_probe = now + self.probe_every
        elif now >= self._next_probe or (self.recent[n] > JUMP * self.best[n]
                                         and now - self._last_probe >= self._gap):
            self._probing_from, self._last_probe = n, now
            self._use(self._neighbour(n))

    def _neighbour(self, n: int) -> int:
        """The next count to try from n: the one not measured lately, fewer threads first."""
        i = self.counts.index(n)
        options = [self.counts[j] for j in (i + 1, i - 1) if 0 <= j < len(self.counts)]
        untried = [c for c in options if c not in self.recent]
        return (untried or sorted(options, key=lambda c: self.recent[c]))[0]

    def _use(self, n: int) -> None:
        if n != self.n:
            self._set(n)
            self.n = n
            self.switches += 1
