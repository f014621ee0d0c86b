"""The comparison dashboard: every variant overlaid in one env.

``CompareDashboard`` is a pure function of the (variant, seed, event) stream, like the run
dashboard, so the live board and `vizlab replay COMPARISON_DIR` draw the same windows. Curves are
replaced whole at each flush (at most 2,000 points a trace), so a redraw never duplicates a point.
With repeats, the epoch curves are means over the seeds and the step curves show the first seed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vizlab.events import EpochEnd, Event, RunEnded, TrainSteps
from vizlab.report import window_packets as P
from vizlab.report.curves import StepCurve
from vizlab.report.fmt import num, pm

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")
WINDOWS = ("cmp_train_loss", "cmp_test_acc", "cmp_test_loss", "cmp_activations", "cmp_summary")
HEAVY = ("cmp_activations", "cmp_summary")


@dataclass(frozen=True)
class VariantEvent:
    """An event of one variant's run, as the comparison's sink queues it."""

    variant: str
    seed: int
    event: Event

    @property
    def kind(self) -> str:
        return self.event.kind


class CompareDashboard:
    """The state behind the comparison's windows (the shape VisdomSink's ``board`` expects)."""

    WINDOWS = WINDOWS
    LIGHT = tuple(w for w in WINDOWS if w not in HEAVY)
    closed_status = None  # set by the sink at close; the comparison has no run card to show it

    def __init__(self, variants: list[tuple[str, int]], activations: tuple[str, ...] = (),
                 title: str = "comparison"):
        """``variants``: (name, seed) for every run, in legend order."""
        self.names = list(dict.fromkeys(name for name, _ in variants))
        self.first_seed = {}
        for name, seed in variants:
            self.first_seed.setdefault(name, seed)
        self.activations, self.title = activations, title
        self.curves = {name: StepCurve() for name in self.names}
        self.epochs: dict[tuple[str, int], dict[int, EpochEnd]] = {v: {} for v in variants}
        self.ended: dict[tuple[str, int], RunEnded] = {}
        self.results: list[dict[str, Any]] | None = None

    def apply(self, item) -> set[str]:
        if isinstance(item, ComparisonResults):
            return self.finish(list(item.rows))
        e, key = item.event, (item.variant, item.seed)
        if isinstance(e, TrainSteps):
            if item.seed == self.first_seed.get(item.variant) and \
                    self.curves[item.variant].set_steps(e.step, e.losses, e.lrs):
                return {"cmp_train_loss"}
            return set()
        if isinstance(e, EpochEnd):
            self.epochs.setdefault(key, {})[e.epoch] = e
            return {"cmp_test_acc", "cmp_test_loss"}
        if isinstance(e, RunEnded):
            self.ended[key] = e
        return set()

    def finish(self, results: list[dict[str, Any]]) -> set[str]:
        self.results = results
        return {"cmp_summary"}

    def panes(self) -> list[P.Pane]:
        return [p for p in (self.pane(w) for w in WINDOWS) if p is not None]

    def pane(self, win: str) -> P.Pane | None:
        if win not in WINDOWS:
            return None
        packet = getattr(self, "_" + win[4:])()
        return None if packet is None else P.Pane(win, win in HEAVY, packet)

    # -- windows -------------------------------------------------------------------------------
    def _color(self, name: str) -> str:
        return COLORS[self.names.index(name) % len(COLORS)]

    def _train_loss(self):
        traces = []
        for name in self.names:
            pts = self.curves[name].points()
            if len(pts):
                traces.append(P.trace(pts.x, pts.smooth, name, self._color(name)))
        if not traces:
            return None
        return P.plot_packet(f"{self.title}: train loss (smoothed)", "step",
                             "loss (cross-entropy)", traces, width=620, height=400)

    def _epoch_means(self, name: str, field: str) -> tuple[list[int], list[float]]:
        """Per epoch, the mean over the seeds that have finished it."""
        per_epoch: dict[int, list[float]] = {}
        for (variant, _), epochs in self.epochs.items():
            if variant == name:
                for epoch, end in epochs.items():
                    per_epoch.setdefault(epoch, []).append(getattr(end, field))
        xs = sorted(per_epoch)
        return xs, [statistics.mean(per_epoch[x]) for x in xs]

    def _epoch_plot(self, field: str, title: str, ylabel: str):
        traces = []
        for name in self.names:
            xs, ys = self._epoch_means(name, field)
            if xs:
                traces.append(P.trace(xs, ys, name, self._color(name), markers=True))
        if not traces:
            return None
        return P.plot_packet(f"{self.title}: {title}", "epoch", ylabel, traces, width=520,
                             height=400, xaxis={"title": "epoch", "dtick": 1})

    def _test_acc(self):
        return self._epoch_plot("test_acc", "test accuracy", "accuracy (%)")

    def _test_loss(self):
        return self._epoch_plot("test_loss", "test loss (mean per sample)", "loss")

    def _activations(self):
        if not self.activations:
            return None
        import torch

        from vizlab.models.activations import activation_curve

        xs = torch.linspace(-5, 5, 201)
        traces = []
        for i, name in enumerate(self.activations):
            ys, dys = activation_curve(name, xs)
            color = COLORS[i % len(COLORS)]
            traces.append(P.trace(xs.tolist(), ys.tolist(), name, color))
            traces.append({**P.trace(xs.tolist(), dys.tolist(), f"{name}'", color, width=1.5),
                           "line": {"color": color, "width": 1.5, "dash": "dot"}})
        return P.plot_packet("activations (solid) and derivatives (dotted)", "x", "f(x), f'(x)",
                             traces, width=520, height=400, yaxis={"title": "f(x), f'(x)",
                                                                   "range": [-2, 5]})

    def _summary(self):
        if not self.results:
            return None
        rows = []
        for r in self.results:
            rows.append([r["rank"], r["variant"], pm(r["final_acc"], r["final_acc_spread"]),
                         pm(r["best_acc"], r["best_acc_spread"]), num(r["test_loss"], 4),
                         num(r["epoch_time"], 2), f"{r['params']:,}", r["repeats"], r["status"]])
        body = P.html_table(rows, header=["#", "variant", "final acc.", "best acc.", "test loss",
                                          "s / epoch", "params", "seeds", "status"])
        return P.text_packet(f"{self.title}: ranking", body, width=620, height=80 + 24 * len(rows))



@dataclass(frozen=True)
class ComparisonResults:
    """The final ranking, queued like an event so the sink's thread draws the summary."""

    rows: tuple
    kind: str = "comparison_results"


def activation_axis(variants) -> tuple[str, ...]:
    """The activations compared, in order, when activation is an axis."""
    if not any("activation" in v.axes for v in variants):
        return ()
    return tuple(dict.fromkeys(v.cfg.activation for v in variants))


def board_for(variants, title: str) -> CompareDashboard:
    return CompareDashboard([(v.name, v.cfg.seed) for v in variants], activation_axis(variants),
                            title)


class CompareBoard:
    """The comparison's live dashboard: the Visdom sink drawing a CompareDashboard."""

    def __init__(self, url: str, env: str, variants, comparison_dir):
        from vizlab.report.visdom_sink import VisdomSink

        self.sink = VisdomSink(url, env, board=board_for(variants, Path(comparison_dir).name))

    def handle_variant(self, name: str, seed: int, event: Event) -> None:
        self.sink.handle(VariantEvent(name, seed, event))

    def finish(self, rows: list, status: str = "finished") -> None:
        self.sink.handle(ComparisonResults(tuple(rows)))
        self.sink.close(status)


def replay_comparison(comparison_dir, url=None, env=None):
    """Redraw a comparison's dashboard from its variants' run logs and comparison.json."""
    from vizlab.config import default_visdom_url
    from vizlab.errors import VizlabError
    from vizlab.names import is_safe_name
    from vizlab.report import visdom_client as vc
    from vizlab.report.replay import ReplayResult, draw_board
    from vizlab.report.runlog import read_events, read_json_object
    from vizlab.run_files import COMPARISON_JSON

    directory = Path(comparison_dir)
    try:
        data = read_json_object(directory / COMPARISON_JSON)  # a regular file, size-bounded
        members = data["members"]
        if not all(isinstance(m, dict) and is_safe_name(m.get("run_dir"))
                   and isinstance(m.get("variant"), str) and isinstance(m.get("seed"), int)
                   for m in members):
            raise ValueError("a member is not {variant, seed, run_dir: one name in this dir}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VizlabError(f"cannot read {directory / COMPARISON_JSON}: {exc}") from None
    target = vc.parse_url(url or default_visdom_url())
    board = CompareDashboard([(m["variant"], m["seed"]) for m in members],
                             tuple(data.get("activations", ())), directory.name)
    count = 0
    for m in members:
        for event in read_events(directory / m["run_dir"]):
            board.apply(VariantEvent(m["variant"], m["seed"], event))
            count += 1
    if data.get("variants"):
        board.finish(data["variants"])
    env = env or data.get("env") or directory.name
    return ReplayResult(env, target.url, count, draw_board(board, target, env))
