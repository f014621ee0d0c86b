"""What the dashboard shows, as a pure function of the events seen so far.

``Dashboard.apply(event)`` updates the state and says which windows changed; ``pane(win)`` builds a
window's packet. The live Visdom sink and ``replay`` share this, so both draw the same thing.

Applying an event is idempotent ("set", never "add": steps, epochs and the latest samples are
keyed), so replaying part of a stream twice in a row leaves the state as if it had been applied
once. The sink relies on that when it rebuilds from the run log after a reconnect.
"""

from __future__ import annotations

from vizlab.events import (
    Control,
    EpochEnd,
    Event,
    Histograms,
    Predictions,
    RunEnded,
    RunStarted,
    SampleSet,
    TrainSteps,
)
from vizlab.report import window_packets as P
from vizlab.report.control_pane import ControlState, command_from_update, fmt_rate
from vizlab.report.curves import StepCurve
from vizlab.report.detail_windows import (
    hist_pane,
    misclassified_pane,
    predictions_pane,
    run_card_pane,
    samples_pane,
)

# Window ids, in display order. Light windows are drawn at every flush that changed them; heavy
# ones (images, tables, heatmaps; the learning rate, which changes slowly) every few seconds.
CURVES = ("train_loss", "lr")
LIGHT = ("train_loss", "test_acc", "test_loss")
HEAVY = ("lr", "samples", "predictions", "misclassified", "confusion", "per_class", "run_card",
         "weights", "gradients")
WINDOWS = ("train_loss", "test_acc", "test_loss", "lr", "samples", "predictions",
           "misclassified", "confusion", "per_class", "run_card", "weights", "gradients")


class Dashboard:
    """The state behind every window of one run's dashboard.

    The control pane (vizlab.report.control_pane) has a window id of its own per env (``env``:
    the env it is drawn into; the run's own by default), known once the run has started:
    ``WINDOWS`` and ``LIGHT`` include it from then on."""

    def __init__(self, env: str | None = None) -> None:
        self.env = env
        self._reset()

    def _reset(self) -> None:
        self.run: RunStarted | None = None
        self.first_started: str | None = None
        self.ended: RunEnded | None = None
        self.closed_status: str | None = None  # from the sink's close(), when no RunEnded came
        self.curve = StepCurve()
        self.epochs: dict[int, EpochEnd] = {}
        self.samples: SampleSet | None = None
        self.predictions: Predictions | None = None
        self.histograms: Histograms | None = None
        self.control = ControlState(target=self.env)
        self.rate_marks: dict[tuple, tuple[int, float, str]] = {}  # lr commands, by request

    @property
    def control_win(self) -> str | None:
        return self.control.win

    @property
    def WINDOWS(self) -> tuple[str, ...]:  # the board interface the sink reads
        win = self.control.win
        return WINDOWS if win is None else WINDOWS + (win,)

    @property
    def LIGHT(self) -> tuple[str, ...]:
        win = self.control.win  # the control pane answers a command at once
        return LIGHT if win is None else LIGHT + (win,)

    def closed(self, status: str) -> set[str]:
        """The sink is closing with ``status`` (shown when no RunEnded came): the windows that
        show it."""
        self.closed_status = status
        return {"run_card"} | ({self.control.win} if self.control.win else set())

    def command_from_update(self, message, env: str, origin: str):
        """The command a browser event asks for (called on the sink's listener thread: it reads
        only the pane's window id, a string)."""
        win = self.control.win
        return None if win is None else command_from_update(message, env, win, origin)

    def refresh_control(self) -> set[str]:
        """The control pane, to be drawn again as it is (the user edited a row that only
        shows state)."""
        self.control.refresh()
        return {self.control.win} if self.control.win else set()

    @classmethod
    def from_events(cls, events, env: str | None = None) -> Dashboard:
        board = cls(env)
        for event in events:
            board.apply(event)
        return board

    @property
    def classes(self) -> tuple[str, ...]:
        return self.run.classes if self.run is not None else ()

    def apply(self, event: Event) -> set[str]:
        """Take one event; return the ids of the windows whose content changed."""
        changed = self._apply(event)
        if self.control.apply(event):
            changed.add(self.control.win)
        return changed

    def _apply(self, event: Event) -> set[str]:
        if isinstance(event, TrainSteps):
            return set(CURVES) if self.curve.set_steps(event.step, event.losses, event.lrs) else set()
        if isinstance(event, Control):
            if event.accepted and event.action == "lr" and isinstance(event.new, (int, float)):
                key = (event.step, event.command, event.request)
                self.rate_marks[key] = (event.step + 1, float(event.new), event.command)
                return {"lr"}
            return set()
        if isinstance(event, EpochEnd):
            self.epochs[event.epoch] = event
            return {"test_acc", "test_loss", "confusion", "per_class", "run_card"}
        if isinstance(event, Predictions):
            self.predictions = event
            return {"samples", "predictions", "misclassified"}
        if isinstance(event, SampleSet):
            self.samples = event
            return {"samples", "predictions"}
        if isinstance(event, Histograms):
            self.histograms = event
            return {"weights", "gradients"}
        if isinstance(event, RunStarted):
            return self._start(event)
        if isinstance(event, RunEnded):
            self.ended = event
            return {"run_card"}
        return set()

    def _start(self, event: RunStarted) -> set[str]:
        if not event.resumed:
            self._reset()  # a fresh run forgets everything before it
        else:
            # A resumed run starts again from its checkpoint: later steps and epochs are redone.
            self.curve.truncate(event.start_step)
            self.epochs = {e: m for e, m in self.epochs.items() if e < event.start_epoch}
            self.rate_marks = {k: m for k, m in self.rate_marks.items()
                               if k[0] <= event.start_step}
        self.run, self.ended, self.closed_status = event, None, None
        self.first_started = self.first_started or event.started
        return set(WINDOWS)

    def status(self) -> str:
        if self.ended is not None:
            return self.ended.status
        return self.closed_status or ("running" if self.run is not None else "unknown")

    # -- windows -----------------------------------------------------------------------------

    def panes(self) -> list[P.Pane]:
        """Every window that has something to show, in display order."""
        return [p for p in (self.pane(win) for win in self.WINDOWS) if p is not None]

    def pane(self, win: str) -> P.Pane | None:
        """Window ``win`` as it should look now, or None when it has nothing to show."""
        if win == self.control.win:
            packet = self.control.packet(self.closed_status)
            return None if packet is None else P.Pane(win, False, packet)
        packet = getattr(self, "_" + win)()
        return None if packet is None else P.Pane(win, win in HEAVY, packet)

    def _train_loss(self):
        pts = self.curve.points()
        if not len(pts):
            return None
        raw = "loss" if pts.width == 1 else f"loss (mean of {pts.width} steps)"
        return P.plot_packet("train loss", "step", "loss (cross-entropy)", [
            P.trace(pts.x, pts.loss, raw, P.BLUE, width=1.0, opacity=0.45),
            P.trace(pts.x, pts.smooth, "smoothed", P.BLUE, width=2.5)])

    def _lr(self):
        pts = self.curve.points()
        if not len(pts) or all(v is None or v != v for v in pts.lr):
            return None
        traces = [P.trace(pts.x, pts.lr, "learning rate", P.PURPLE)]
        if self.rate_marks:  # where a command changed the rate (from the step after it)
            marks = sorted(self.rate_marks.values())
            traces.append({
                "x": [m[0] for m in marks], "y": P.finite([m[1] for m in marks]),
                "text": [f"{m[2]} (step {m[0]}: {fmt_rate(m[1])})" for m in marks],
                "name": "changed by a command", "type": "scatter", "mode": "markers",
                "hovertemplate": "%{text}<extra></extra>",
                "marker": {"color": P.RED, "size": 10, "symbol": "triangle-down"}})
        return P.plot_packet("learning rate", "step", "learning rate", traces)

    def epoch_rows(self) -> list[EpochEnd]:
        return [self.epochs[e] for e in sorted(self.epochs)]

    def _test_loss(self):
        rows = self.epoch_rows()
        if not rows:
            return None
        x = [m.epoch for m in rows]
        traces = [P.trace(x, [m.test_loss for m in rows], "test", P.ORANGE, markers=True),
                  P.trace(x, [m.train_loss for m in rows], "train (epoch mean)", P.BLUE,
                          markers=True)]
        if any(m.val_loss is not None for m in rows):
            traces.append(P.trace(x, [m.val_loss for m in rows], "validation", P.GREEN,
                                  markers=True))
        return P.plot_packet("test loss (mean per sample)", "epoch", "loss", traces,
                             xaxis={"title": "epoch", "dtick": 1})

    def _test_acc(self):
        rows = self.epoch_rows()
        if not rows:
            return None
        x = [m.epoch for m in rows]
        traces = [P.trace(x, [m.test_acc for m in rows], "test", P.ORANGE, markers=True)]
        if any(m.val_acc is not None for m in rows):
            traces.append(P.trace(x, [m.val_acc for m in rows], "validation", P.GREEN,
                                  markers=True))
        return P.plot_packet("test accuracy (%)", "epoch", "accuracy (%)", traces,
                             xaxis={"title": "epoch", "dtick": 1})

    def _confusion(self):
        rows = self.epoch_rows()
        if not rows or not rows[-1].confusion:
            return None
        last = rows[-1]
        names = self._names(len(last.confusion))
        return P.heatmap_packet(f"confusion matrix (epoch {last.epoch})", last.confusion, names)

    def _per_class(self):
        rows = self.epoch_rows()
        if not rows or not rows[-1].per_class_acc:
            return None
        last = rows[-1]
        names = self._names(len(last.per_class_acc))
        series = [(f"epoch {last.epoch}", last.per_class_acc, P.ORANGE)]
        if len(rows) > 1 and len(rows[0].per_class_acc) == len(names):
            series.insert(0, (f"epoch {rows[0].epoch}", rows[0].per_class_acc, "#c7c7c7"))
        low = min(min(v for _, vals, _ in series for v in vals), 100.0)
        return P.bar_packet("per-class test accuracy (%)", "class", "accuracy (%)", names, series,
                            yaxis={"title": "accuracy (%)",
                                   "range": [max(0.0, low - 5.0), 100.5]})

    def _names(self, n: int) -> list[str]:
        classes = self.classes
        return [classes[i] if i < len(classes) else str(i) for i in range(n)]

    def _samples(self):
        return samples_pane(self.samples, self.predictions, self.classes)

    def _predictions(self):
        return predictions_pane(self.samples, self.predictions, self.classes)

    def _misclassified(self):
        return misclassified_pane(self.samples, self.predictions, self.classes)

    def _run_card(self):
        return run_card_pane(self)

    def _weights(self):
        return hist_pane(self.histograms, "weight")

    def _gradients(self):
        return hist_pane(self.histograms, "grad")

