"""Curves over several seeds: each variant's mean, a shaded 95% band, and its seeds drawn faint.

The band is the Student-t interval of the mean at each x (as in the ranking), where at least two
seeds have a value. Colours are rgba, not trace opacity: Visdom's page resets the opacity of line
traces to 1 when its smoothing button is off. The band is a closed polygon drawn with ``mode:
"none"`` (no line), so Visdom's smoothing leaves it alone, and every trace of a variant shares a
legend group: clicking the variant's name hides its mean, band and seeds together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from vizlab.report import window_packets as P
from vizlab.stats import t_quantile

BAND_ALPHA, SEED_ALPHA = 0.18, 0.35


def rgba(color: str, alpha: float) -> str:
    """'#1f77b4' -> 'rgba(31,119,180,0.18)'."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _mean_band(values: list[float]) -> tuple[float, float | None]:
    """The mean and the half-width of its 95% interval (None for one value)."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_quantile(0.975, n - 1) * sd / math.sqrt(n)


def seed_traces(name: str, color: str, series: Mapping[int, Mapping[float, float | None]],
                *, markers: bool = False, complete_only: bool = False,
                show_seeds: bool | None = None,
                clip: tuple[float | None, float | None] = (None, None)) -> list[dict]:
    """The traces of one variant over its seeds, back to front: band(s), seeds, mean.

    ``series`` maps seed -> {x: y}. With ``complete_only`` the mean and band use only the x that
    every seed has (step curves, where one seed may be a few steps ahead); otherwise each x uses
    the seeds that have it (epoch curves: the mean over the seeds that finished that epoch).
    ``show_seeds`` (default: when there are several) draws each seed faint. ``clip`` bounds the
    band to what the quantity can be (an accuracy stays within 0-100 however few the seeds).
    """
    finite = {s: {x: y for x, y in pts.items() if y is not None and math.isfinite(y)}
              for s, pts in series.items()}
    xs = sorted(set().union(*(pts.keys() for pts in finite.values()))) if finite else []
    if complete_only:
        xs = [x for x in xs if all(x in pts for pts in finite.values())]
    means, halves = [], []
    for x in xs:
        mean, half = _mean_band([pts[x] for pts in finite.values() if x in pts])
        means.append(mean)
        halves.append(half)
    traces = []
    lo_clip, hi_clip = clip
    for segment in _segments(xs, means, halves):  # a polygon per run of x with a band
        sx, low, high = segment
        low = [v if lo_clip is None else max(v, lo_clip) for v in low]
        high = [v if hi_clip is None else min(v, hi_clip) for v in high]
        traces.append({"x": sx + sx[::-1], "y": P.finite(high + low[::-1]),
                       "name": f"{name} 95% band", "type": "scatter", "mode": "none",
                       "fill": "toself", "fillcolor": rgba(color, BAND_ALPHA),
                       "hoverinfo": "skip", "showlegend": False, "legendgroup": name})
    if show_seeds if show_seeds is not None else len(series) > 1:
        for seed, pts in series.items():
            sx = sorted(pts)
            traces.append({**P.trace(sx, [pts[x] for x in sx], f"{name} seed {seed}",
                                     rgba(color, SEED_ALPHA), width=1.0),
                           "showlegend": False, "legendgroup": name})
    if xs:
        traces.append({**P.trace(xs, means, name, color, markers=markers), "legendgroup": name})
    return traces


def _segments(xs, means, halves):
    """Runs of consecutive x that have a band: (x, low, high) lists."""
    out, current = [], None
    for x, mean, half in zip(xs, means, halves):
        if half is None:
            current = None
            continue
        if current is None:
            current = ([], [], [])
            out.append(current)
        current[0].append(x)
        current[1].append(mean - half)
        current[2].append(mean + half)
    return out
