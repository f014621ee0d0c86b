"""Visdom window packets built by hand: plotly figures, escaped HTML, PNG images.

A packet is the JSON that Visdom's ``events`` endpoint stores as one window (``data``, ``layout``,
``opts``). Building it here, instead of through the client's plotting helpers, keeps every window
exactly reproducible: live and replayed dashboards hold the same JSON. Everything that came from
a user or a file is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

BLUE, ORANGE, GREEN, RED, PURPLE = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"


@dataclass(frozen=True)
class Pane:
    """One Visdom window: its id, whether it is heavy (rate-limited), and its packet."""

    win: str
    heavy: bool
    packet: dict[str, Any]


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def finite(values: Iterable[float | None]) -> list[float | None]:
    """NaN and infinities become None (JSON null: a gap), which plotly and JSON both accept."""
    return [float(v) if v is not None and math.isfinite(v) else None for v in values]


def trace(x: Sequence, y: Sequence, name: str, color: str, *, width: float = 2.0,
          markers: bool = False, opacity: float = 1.0) -> dict[str, Any]:
    return {"x": list(x), "y": finite(y), "name": name, "type": "scatter",
            "mode": "lines+markers" if markers else "lines", "opacity": opacity,
            "line": {"color": color, "width": width}}


def _layout(title: str, xlabel: str, ylabel: str, **extra: Any) -> dict[str, Any]:
    layout = {"title": title, "showlegend": True,
              "legend": {"x": 1, "xanchor": "right", "y": 1, "bgcolor": "rgba(255,255,255,0.6)"},
              "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
              "xaxis": {"title": xlabel}, "yaxis": {"title": ylabel}}
    layout.update(extra)
    return layout


def _opts(title: str, width: int, height: int) -> dict[str, Any]:
    return {"title": title, "width": width, "height": height}


def plot_packet(title: str, xlabel: str, ylabel: str, traces: list[dict], *, width: int = 520,
                height: int = 360, **layout: Any) -> dict[str, Any]:
    return {"data": traces, "layout": _layout(title, xlabel, ylabel, **layout),
            "opts": _opts(title, width, height)}


def text_packet(title: str, body_html: str, *, width: int = 440, height: int = 420) -> dict:
    return {"data": [{"content": body_html, "type": "text"}], "opts": _opts(title, width, height)}


def image_packet(title: str, data_url: str, caption: str, width: int, height: int) -> dict:
    """An image in a text pane (an ``<img>``), not in Visdom's image pane: Visdom 0.2.4's image
    pane cancels every key press on the whole page (fossasia/visdom#935), which would leave the
    control pane's rate field impossible to type into."""
    if not data_url.startswith("data:image/png;base64,"):
        raise ValueError("image_packet takes a PNG data URL")
    body = (f'<img src="{data_url}" alt="{esc(caption)}" width="{width}" height="{height}" '
            'style="image-rendering:pixelated;max-width:100%;height:auto">'
            f'<div style="font-size:12px;color:#555">{esc(caption)}</div>')
    # The pane is a little larger than the image so the caption and title bar fit.
    return {"data": [{"content": body, "type": "text"}],
            "opts": _opts(title, width + 30, height + 80)}


def bar_packet(title: str, xlabel: str, ylabel: str, names: Sequence[str],
               series: list[tuple[str, Sequence[float], str]], **layout: Any) -> dict:
    traces = [{"x": [esc(n) for n in names], "y": finite(values), "name": name, "type": "bar",
               "marker": {"color": color}} for name, values, color in series]
    return plot_packet(title, xlabel, ylabel, traces, barmode="group", **layout)


def heatmap_packet(title: str, matrix: Sequence[Sequence[int]], names: Sequence[str]) -> dict:
    """Counts drawn on a log colour scale (the diagonal dwarfs the mistakes); hover gives counts."""
    labels = [esc(n) for n in names]
    z = [[math.log10(1 + c) for c in row] for row in matrix]
    top = max((c for row in matrix for c in row), default=1)
    ticks = [t for t in (1, 10, 100, 1000, 10000, 100000) if t <= max(top, 1)]
    data = [{"z": z, "x": labels, "y": labels, "type": "heatmap", "colorscale": "Viridis",
             "text": [[str(c) for c in row] for row in matrix], "name": "count",
             "hovertemplate": "true %{y}<br>predicted %{x}<br>%{text} images<extra></extra>",
             "colorbar": {"title": "count", "tickvals": [math.log10(1 + t) for t in ticks],
                          "ticktext": [str(t) for t in ticks]}}]
    return plot_packet(title, "predicted", "true", data, width=520, height=480,
                       yaxis={"title": "true", "autorange": "reversed", "type": "category"},
                       xaxis={"title": "predicted", "type": "category"})


def html_table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None,
               row_styles: Sequence[str] | None = None) -> str:
    """An HTML table; every cell is escaped here, so callers pass raw values."""
    cell = 'style="padding:1px 8px;text-align:left"'
    out = ['<table style="border-collapse:collapse;font-size:12px">']
    if header:
        out.append("<tr>" + "".join(f"<th {cell}>{esc(h)}</th>" for h in header) + "</tr>")
    for i, row in enumerate(rows):
        style = f' style="{row_styles[i]}"' if row_styles and row_styles[i] else ""
        out.append(f"<tr{style}>" + "".join(f"<td {cell}>{esc(v)}</td>" for v in row) + "</tr>")
    out.append("</table>")
    return "".join(out)
