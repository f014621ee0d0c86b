"""A grid at a glance: one line per variant across the varied options, its final accuracy and its
time to target (a Plotly ``parcoords`` trace: Visdom 0.2.4 and 0.3 both ship a Plotly build that
draws it, and a window packet is handed to Plotly as it is).

Options with words (activation, optimizer) become evenly spaced categories; a numeric option that
spans two decades or more (a learning rate) is drawn on a log scale, labelled with its values.
Variants that never reached the target sit on a "not reached" tick above the slowest one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from vizlab.report import window_packets as P


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _axis_dimension(label: str, values: list[Any]) -> dict[str, Any]:
    numbers = [_number(v) for v in values]
    if all(n is not None for n in numbers):
        distinct = sorted(set(numbers))
        if distinct[0] > 0 and distinct[-1] / distinct[0] >= 100:  # log scale, own ticks
            return {"label": label, "values": [math.log10(n) for n in numbers],
                    "tickvals": [math.log10(n) for n in distinct],
                    "ticktext": [f"{n:g}" for n in distinct]}
        return {"label": label, "values": numbers, "tickvals": distinct,
                "ticktext": [f"{n:g}" for n in distinct]}
    names = list(dict.fromkeys(str(v) for v in values))  # categories, in first-seen order
    return {"label": label, "values": [names.index(str(v)) for v in values],
            "tickvals": list(range(len(names))), "ticktext": [P.esc(n) for n in names],
            "range": [-0.5, len(names) - 0.5] if len(names) > 1 else [-1, 1]}


def _target_dimension(rows: Sequence[dict[str, Any]], target: float | None) -> dict[str, Any]:
    seconds = [(r.get("time_to_target") or {}).get("seconds") for r in rows]
    reached = [s for s in seconds if s is not None]
    top = max(reached, default=0.0) or 1.0
    missing = top * 1.25 if reached else 1.0
    # Few ticks with distinct labels: Plotly's parcoords misplaces repeated ones.
    ticks = [0.0, top / 2, top] if reached else []
    texts = [f"{t:.3g}" for t in ticks]
    label = f"s to {target:g}%" if target is not None else "s to target"
    dim = {"label": label, "values": [missing if s is None else s for s in seconds],
           "tickvals": ticks, "ticktext": texts,
           "range": [0, missing if len(reached) < len(seconds) else top]}
    if len(reached) < len(seconds):
        dim["tickvals"] = ticks + [missing]
        dim["ticktext"] = dim["ticktext"] + ["not reached"]
    return dim


def parcoords_packet(title: str, rows: Sequence[dict[str, Any]],
                     target: float | None) -> dict[str, Any] | None:
    """The pane for ranking ``rows`` (vizlab.compare.ranking), or None below two axes."""
    rows = [r for r in rows if r.get("final_acc") is not None]
    axes = list(dict.fromkeys(k for r in rows for k in (r.get("axes") or {})))
    if len(axes) < 2 or len(rows) < 2:
        return None
    accs = [r["final_acc"] for r in rows]
    dimensions = [_axis_dimension(axis.replace("_", " "), [r["axes"].get(axis) for r in rows])
                  for axis in axes]
    dimensions.append({"label": "final acc. (%)", "values": accs})
    dimensions.append(_target_dimension(rows, target))
    trace = {"type": "parcoords", "name": "variants", "dimensions": dimensions,
             "line": {"color": accs, "colorscale": "Viridis", "showscale": True,
                      "cmin": min(accs), "cmax": max(accs),
                      "colorbar": {"title": "final acc. (%)"}},
             "labelfont": {"size": 12}, "tickfont": {"size": 10}}
    packet = P.plot_packet(f"{title}: the grid at a glance", "", "", [trace], width=900,
                           height=420, margin={"l": 80, "r": 80, "t": 80, "b": 40})
    layout = packet["layout"]
    layout["showlegend"] = False
    del layout["xaxis"], layout["yaxis"]  # no cartesian axes behind the parcoords
    return packet
