"""The comparison dashboard: every variant overlaid in one env.

``CompareDashboard`` is a pure function of the (variant, seed, event) stream, like the run
dashboard, so the live board and `vizlab replay COMPARISON_DIR` draw the same windows. Curves are
replaced whole at each flush (at most 2,000 points a trace), so a redraw never duplicates a point.
With repeats, every curve is the variant's mean over its seeds with a shaded 95% band, the seeds
drawn faint behind it (vizlab.report.bands), live as the seeds train.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vizlab.events import Control, EpochEnd, Event, RunEnded, TrainSteps
from vizlab.report import window_packets as P
from vizlab.report.bands import seed_traces
from vizlab.report.compare_control_pane import CompareControlState, command_from_update
from vizlab.report.control_pane import control_win
from vizlab.report.curves import StepCurve
from vizlab.report.parcoords import parcoords_packet
from vizlab.report.ranking_view import ranking_packet

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")
WINDOWS = ("cmp_train_loss", "cmp_test_acc", "cmp_test_loss", "cmp_activations", "cmp_summary",
           "cmp_parcoords")
HEAVY = ("cmp_activations", "cmp_summary", "cmp_parcoords")


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

    closed_status = None  # set at close (or by a replay): the control pane's status

    def __init__(self, variants: list[tuple[str, int]], activations: tuple[str, ...] = (),
                 title: str = "comparison", target: float | None = None,
                 differences: dict | None = None, env: str | None = None,
                 steering: bool | None = None):
        """``variants``: (name, seed) for every run, in legend order; ``target``: the accuracy
        whose time to reach is ranked; ``differences``: the data-shaping settings that differ
        between the runs (a comparison of existing runs that is not controlled). ``title`` names
        the comparison; window titles leave it out (the env shows it, and a long name in front of
        every title ran into Plotly's toolbar). ``env`` and ``steering`` (whether it takes
        commands) give it a control pane (vizlab.report.compare_control_pane) in that env; a
        comparison of existing runs has none."""
        self.names = list(dict.fromkeys(name for name, _ in variants))
        self.seeds: dict[str, list[int]] = {}
        for name, seed in variants:
            self.seeds.setdefault(name, []).append(seed)
        self.activations, self.title = activations, title
        self.target, self.differences = target, differences or {}
        self.curves = {(name, seed): StepCurve() for name, seed in variants}
        self.epochs: dict[tuple[str, int], dict[int, EpochEnd]] = {v: {} for v in variants}
        self.ended: dict[tuple[str, int], RunEnded] = {}
        self.results: list[dict[str, Any]] | None = None
        self.control = None if env is None or steering is None else \
            CompareControlState(tuple(self.names), self.seeds, steering)
        self.control_win = None if self.control is None else control_win(env)

    # -- the board interface the sink reads ----------------------------------------------------
    @property
    def WINDOWS(self) -> tuple[str, ...]:
        return WINDOWS + ((self.control_win,) if self.control_win else ())

    @property
    def LIGHT(self) -> tuple[str, ...]:
        return tuple(w for w in self.WINDOWS if w not in HEAVY)

    def closed(self, status: str) -> set[str]:
        """The sink is closing: the comparison ended with ``status``; the control pane (now
        without buttons) shows it."""
        self.closed_status = status
        return {self.control_win} if self.control_win else set()

    def refresh_control(self) -> set[str]:
        """The control pane, to be drawn again as it is (an edit of a row that shows state)."""
        if self.control is None:
            return set()
        self.control.refresh()
        return {self.control_win}

    def command_from_update(self, message, env: str, origin: str):
        """The command a browser event asks for (called on the sink's listener thread: it reads
        only what never changes after construction)."""
        if self.control_win is None:
            return None
        return command_from_update(message, env, self.control_win, self.control.names, origin)

    def apply(self, item) -> set[str]:
        changed = self._apply(item)
        if self.control is None:
            return changed
        if isinstance(item, VariantEvent):
            shown = self.control.apply(item.variant, item.seed, item.event)
        else:  # the comparison's own answer to a command (a Control event), or its results
            shown = isinstance(item, Control) and self.control.apply(None, None, item)
        return changed | {self.control_win} if shown else changed

    def _apply(self, item) -> set[str]:
        if isinstance(item, ComparisonResults):
            return self.finish(list(item.rows))
        if isinstance(item, Control):  # the comparison's answer to a command no run took
            return set()
        e, key = item.event, (item.variant, item.seed)
        if isinstance(e, TrainSteps):
            curve = self.curves.get(key)
            if curve is not None and curve.set_steps(e.step, e.losses, e.lrs):
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
        return {"cmp_summary", "cmp_parcoords"}

    def panes(self) -> list[P.Pane]:
        return [p for p in (self.pane(w) for w in self.WINDOWS) if p is not None]

    def pane(self, win: str) -> P.Pane | None:
        if win is not None and win == self.control_win:
            return P.Pane(win, False, self.control.packet(self.closed_status))
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
            series = {}
            for seed in self.seeds[name]:
                pts = self.curves[(name, seed)].points()
                if len(pts):
                    series[seed] = dict(zip(pts.x, pts.smooth))
            if series:
                traces += seed_traces(name, self._color(name), series, complete_only=True,
                                      show_seeds=len(self.seeds[name]) > 1, clip=(0.0, None))
        if not traces:
            return None
        return P.plot_packet("train loss (smoothed)", "step",
                             "loss (cross-entropy)", traces, width=620, height=400)

    def _epoch_plot(self, field: str, title: str, ylabel: str, clip=(0.0, None)):
        traces = []
        for name in self.names:  # per seed, the epochs it has finished
            series = {seed: {epoch: getattr(end, field)
                             for epoch, end in sorted(self.epochs.get((name, seed), {}).items())}
                      for seed in self.seeds[name]}
            series = {seed: pts for seed, pts in series.items() if pts}
            if series:
                traces += seed_traces(name, self._color(name), series, markers=True,
                                      show_seeds=len(self.seeds[name]) > 1, clip=clip)
        if not traces:
            return None
        return P.plot_packet(title, "epoch", ylabel, traces, width=520,
                             height=400, xaxis={"title": "epoch", "dtick": 1})

    def _test_acc(self):
        return self._epoch_plot("test_acc", "test accuracy", "accuracy (%)", clip=(0.0, 100.0))

    def _test_loss(self):
        return self._epoch_plot("test_loss", "test loss (mean per sample)", "loss")

    def _activations(self):
        if not self.activations:
            return None
        from vizlab.report.activation_pane import activation_packet

        return activation_packet(self.activations, COLORS)

    def _summary(self):
        if not self.results:
            return None
        return ranking_packet(self.results, self.target, self.differences)

    def _parcoords(self):
        """Grids of two or more axes: every variant as one line across them."""
        if not self.results:
            return None
        return parcoords_packet(self.results, self.target)


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


def board_for(variants, title: str, target: float | None = None, env: str | None = None,
              steering: bool | None = None) -> CompareDashboard:
    return CompareDashboard([(v.name, v.cfg.seed) for v in variants], activation_axis(variants),
                            title, target, env=env, steering=steering)


class CompareBoard:
    """The comparison's live dashboard: the Visdom sink drawing a CompareDashboard; with an
    ``inbox`` (vizlab.control), its control pane's commands go there."""

    def __init__(self, url: str, env: str, board: CompareDashboard, inbox=None):
        from vizlab.report.visdom_sink import VisdomSink

        self.sink = VisdomSink(url, env, board=board, inbox=inbox)

    def handle_variant(self, name: str, seed: int, event: Event) -> None:
        self.sink.handle(VariantEvent(name, seed, event))

    def handle_comparison(self, event: Event) -> None:
        """The comparison's own answer to a command (a Control event no run logged)."""
        self.sink.handle(event)

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
        # A comparison's own variants are dirs inside it; a comparison of existing runs names
        # run dirs anywhere (they are only read, through the log reader's checks).
        inside = data.get("existing_runs") is not True
        if not all(isinstance(m, dict) and isinstance(m.get("variant"), str)
                   and isinstance(m.get("seed"), int) and isinstance(m.get("run_dir"), str)
                   and (is_safe_name(m["run_dir"]) or not inside) for m in members):
            raise ValueError("a member is not {variant, seed, run_dir: a run dir}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VizlabError(f"cannot read {directory / COMPARISON_JSON}: {exc}") from None
    server = vc.parse_url(url or default_visdom_url())
    accuracy = data.get("target")
    accuracy = float(accuracy) if isinstance(accuracy, (int, float)) else None
    differences = data.get("differences") if isinstance(data.get("differences"), dict) else {}
    env = env or data.get("env") or directory.name
    steering = data.get("steering") if isinstance(data.get("steering"), bool) else None
    try:
        board = CompareDashboard([(str(m["variant"]), int(m["seed"])) for m in members],
                                 tuple(map(str, data.get("activations", ()))), directory.name,
                                 accuracy, differences, env=env, steering=steering)
        board.closed(str(data.get("status") or "unfinished"))  # the pane as it was left
        count = 0
        for m in members:
            for event in read_events(directory / str(m["run_dir"])):
                board.apply(VariantEvent(str(m["variant"]), int(m["seed"]), event))
                count += 1
        if data.get("variants"):
            board.finish(list(data["variants"]))
            board.pane("cmp_summary")  # a malformed ranking fails here, not in the drawing
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VizlabError(f"cannot replay {directory}: {type(exc).__name__}: {exc}") from None
    return ReplayResult(env, server.url, count, draw_board(board, server, env))
