"""Step-bucket aggregation for the per-step curves (train loss, learning rate).

Every step's value is kept (the run log keeps them too); what is drawn is one point per bucket of
``width`` consecutive steps. Buckets are fixed by step number, not by time: bucket ``k`` holds
steps ``k*width+1 .. (k+1)*width`` and is drawn at its last step. ``width`` is the smallest power of
two that keeps the whole run within ``MAX_POINTS`` buckets, so it doubles (coarsens) as the run
grows, and the same per-step values always give the same points, live or replayed.

The last bucket may be partial (drawn at the last step so far). A bucket's value is the exactly
rounded mean (``math.fsum``) of its finite values, so it does not depend on how the steps
arrived; ``None`` when a bucket has none (a diverged run shows a gap). The smoothed trace is a
debiased exponential moving average over the bucket means.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

MAX_POINTS = 2000
SMOOTHING = 0.95  # EMA weight per bucket: a time constant of about 20 points on screen

_NAN = float("nan")
_NAN_BLOCK = array("d", [_NAN]) * 65536


def bucket_width(last_step: int, max_points: int = MAX_POINTS) -> int:
    """The smallest power of two ``w`` with ``ceil(last_step / w) <= max_points``."""
    width = 1
    while -(-last_step // width) > max_points:
        width *= 2
    return width


def _mean(values) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return math.fsum(finite) / len(finite) if finite else None


@dataclass(frozen=True)
class CurvePoints:
    """The points of the curve windows: x (last step of each bucket) and one list per trace."""

    x: list[int]
    loss: list[float | None]
    smooth: list[float | None]
    lr: list[float | None]
    width: int

    def __len__(self) -> int:
        return len(self.x)


class StepCurve:
    """Per-step loss and learning rate, and their bucketed points.

    Means of complete buckets are cached (recomputed only when coarsening, a rewrite of past
    steps, or a resume that rewinds invalidates them), so drawing stays cheap however long the run.
    """

    def __init__(self, max_points: int = MAX_POINTS, smoothing: float = SMOOTHING):
        self.max_points = max_points
        self.smoothing = smoothing
        self.version = 0  # changes whenever the points change
        self._loss = array("d")  # index = step - 1; NaN where a step is missing
        self._lr = array("d")
        self._width = 1
        # Cached points for complete buckets (a prefix of the curve), extended lazily.
        self._x: list[int] = []
        self._mean: list[float | None] = []
        self._lr_mean: list[float | None] = []
        self._smooth: list[float | None] = []
        self._ema = 0.0
        self._ema_n = 0
        self._points: tuple[int, CurvePoints] | None = None  # (version, points)

    @property
    def last_step(self) -> int:
        return len(self._loss)

    @property
    def width(self) -> int:
        return self._width

    def set_steps(self, first_step: int, losses: Sequence[float], lrs: Sequence[float]) -> bool:
        """Store values for steps ``first_step, first_step+1, ...``; True if anything changed.

        Setting a step again with the same value changes nothing, so applying an event twice is
        harmless (the sink relies on that when it rebuilds from the run log).
        """
        if first_step < 1 or not losses:
            return False
        n = len(losses)
        new_loss = array("d", (float(v) for v in losses))
        new_lr = array("d", (float(v) for v in lrs[:n]))
        new_lr.extend([_NAN] * (n - len(new_lr)))
        start, end = first_step - 1, first_step - 1 + n
        if end <= len(self._loss) and self._loss[start:end].tobytes() == new_loss.tobytes() \
                and self._lr[start:end].tobytes() == new_lr.tobytes():
            return False
        while start > len(self._loss):  # missing steps: NaN, in blocks (no list of the gap's size)
            gap = min(start - len(self._loss), len(_NAN_BLOCK))
            self._loss.extend(_NAN_BLOCK[:gap])
            self._lr.extend(_NAN_BLOCK[:gap])
        self._invalidate_bucket(start // self._width)
        self._loss[start:end] = new_loss
        self._lr[start:end] = new_lr
        self._rewidth()
        self.version += 1
        return True

    def truncate(self, last_step: int) -> bool:
        """Forget steps after ``last_step`` (a resumed run starts again from its checkpoint)."""
        last_step = max(0, last_step)
        if last_step >= len(self._loss):
            return False
        self._invalidate_bucket(last_step // self._width)
        del self._loss[last_step:]
        del self._lr[last_step:]
        self._rewidth()
        self.version += 1
        return True

    def points(self) -> CurvePoints:
        """One point per bucket, the last (partial) bucket included. Treat it as read-only:
        it is cached until the steps change."""
        if self._points is not None and self._points[0] == self.version:
            return self._points[1]
        self._points = (self.version, self._compute_points())
        return self._points[1]

    def _compute_points(self) -> CurvePoints:
        self._extend_cache()
        x, loss, smooth, lr = list(self._x), list(self._mean), list(self._smooth), list(self._lr_mean)
        done = len(x) * self._width
        if done < len(self._loss):
            m = _mean(self._loss[done:])
            x.append(len(self._loss))
            loss.append(m)
            smooth.append(self._ema_step(self._ema, self._ema_n, m)[2])
            lr.append(_mean(self._lr[done:]))
        return CurvePoints(x, loss, smooth, lr, self._width)

    # -- internals ---------------------------------------------------------------------------

    def _rewidth(self) -> None:
        width = bucket_width(len(self._loss), self.max_points)
        if width != self._width:
            self._width = width
            self._invalidate_bucket(0)

    def _invalidate_bucket(self, bucket: int) -> None:
        if bucket >= len(self._x):
            return
        del self._x[bucket:], self._mean[bucket:], self._lr_mean[bucket:], self._smooth[bucket:]
        # Recompute the EMA state up to the kept prefix (cheap: at most MAX_POINTS values).
        self._ema, self._ema_n = 0.0, 0
        for m in self._mean:
            self._ema, self._ema_n, _ = self._ema_step(self._ema, self._ema_n, m)

    def _ema_step(self, ema: float, n: int, value: float | None):
        """One EMA step; returns (ema, count, debiased value). Gaps carry the last value."""
        if value is not None:
            ema = self.smoothing * ema + (1.0 - self.smoothing) * value
            n += 1
        out = ema / (1.0 - self.smoothing ** n) if n else None
        return ema, n, out

    def _extend_cache(self) -> None:
        w = self._width
        for k in range(len(self._x), len(self._loss) // w):
            a, b = k * w, (k + 1) * w
            m = _mean(self._loss[a:b])
            self._ema, self._ema_n, s = self._ema_step(self._ema, self._ema_n, m)
            self._x.append(b)
            self._mean.append(m)
            self._smooth.append(s)
            self._lr_mean.append(_mean(self._lr[a:b]))
