"""The terminal sink: a Rich progress bar per epoch, one line per epoch, a summary table at the end.

Modes: ``rich`` (live bar), ``plain`` (one line per epoch: logs, pipes, CI), ``off``.
"""

from __future__ import annotations

import sys

from vizlab.events import Control, EpochEnd, Event, RunEnded, RunStarted, TrainSteps


def choose_mode(requested: str | None, stream=None) -> str:
    """rich on a terminal, plain otherwise, unless the user chose."""
    if requested:
        return requested
    stream = stream or sys.stdout
    return "rich" if getattr(stream, "isatty", lambda: False)() else "plain"


def epoch_line(e: EpochEnd, epochs: int) -> str:
    val = f"  val acc {e.val_acc:6.2f}%" if e.val_acc is not None else ""
    best = " *" if e.is_best else ""
    return (f"epoch {e.epoch:>{len(str(epochs))}}/{epochs}  train loss {e.train_loss:.4f}  "
            f"test loss {e.test_loss:.4f}  acc {e.test_acc:6.2f}%{val}  "
            f"{e.epoch_time:6.2f} s  {e.samples_per_s:,.0f} samples/s{best}")


class ConsoleSink:
    def __init__(self, mode: str = "rich", console=None):
        if console is None:
            from vizlab.term import console as shared_console

            console = shared_console()
        self.mode, self.console = mode, console
        self.epochs = 0
        self.batch_size = 1
        self.rows: list[EpochEnd] = []
        self._progress = None
        self._task = None
        self._smoothed: float | None = None
        self._closed = False

    # -- events --------------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        if self.mode == "off" or self._closed:
            return
        if isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, TrainSteps):
            self._steps(event)
        elif isinstance(event, EpochEnd):
            self._stop_bar()
            self.rows.append(event)
            self.console.print(epoch_line(event, self.epochs), markup=False)
        elif isinstance(event, RunEnded):
            self._stop_bar()
            self._summary(event)
        elif isinstance(event, Control):  # a steering command, accepted or refused
            from vizlab.report.control_pane import describe

            self.console.print(f"control: {describe(event)}", markup=False, highlight=False)

    def close(self, status: str = "finished") -> None:
        self._stop_bar()
        self._closed = True

    # -- parts ---------------------------------------------------------------------------------
    def _started(self, e: RunStarted) -> None:
        self.epochs = e.epochs
        self.batch_size = int(e.config.get("batch_size", 1))
        what = "resuming" if e.resumed else "training"
        where = e.device + (f" x{e.world_size}" if e.world_size > 1 else "")
        from rich.text import Text

        line = Text.assemble(  # Text, not markup: model and run dir are the user's strings
            f"{what} ", (e.model, "bold"), f" ({e.params:,} parameters) on {where}: "
            f"{e.dataset}, {e.train_samples:,} train / {e.test_samples:,} test samples, "
            f"{plural(e.epochs, 'epoch')} -> {e.run_dir}")
        self.console.print(line, highlight=False)

    def _steps(self, e: TrainSteps) -> None:
        for loss in e.losses:  # exponential moving average: a readable running loss
            self._smoothed = loss if self._smoothed is None else 0.98 * self._smoothed + 0.02 * loss
        if self.mode != "rich":
            return
        if self._progress is None:
            self._start_bar(e)
        rate = e.epoch_steps * self.batch_size / e.elapsed if e.elapsed > 0 else 0.0
        # The last step's chunk: the test set is evaluated next, with no step to show for it.
        done = e.steps_per_epoch > 0 and e.epoch_steps >= e.steps_per_epoch
        self._progress.update(self._task, completed=e.epoch_steps, loss=self._smoothed, rate=rate,
                              phase="evaluating" if done else "")

    def _start_bar(self, e: TrainSteps) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:,.0f} samples/s"), TimeRemainingColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[phase]}"),
            console=self.console, transient=True, refresh_per_second=8)
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=e.steps_per_epoch, epoch=f"{e.epoch}/{self.epochs}",
            loss=self._smoothed or 0.0, rate=0.0, phase="")

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _summary(self, e: RunEnded) -> None:
        if self.mode == "plain":
            self.console.print(f"{e.status}: {plural(e.epochs_done, 'epoch')}, best accuracy "
                               f"{_pct(e.best_acc)}, {e.wall_time:.1f} s", markup=False)
            return
        from rich.table import Table

        table = Table(title=f"run {e.status}", title_justify="left")
        for col in ("epoch", "train loss", "test loss", "accuracy", "time"):
            table.add_column(col, justify="right")
        for r in self.rows:
            acc = f"{r.test_acc:.2f}%" + (" *" if r.is_best else "")
            table.add_row(str(r.epoch), f"{r.train_loss:.4f}", f"{r.test_loss:.4f}", acc,
                          f"{r.epoch_time:.2f} s")
        if self.rows:
            self.console.print(table)
        self.console.print(f"best accuracy {_pct(e.best_acc)} in {e.wall_time:.1f} s"
                           + (f" ({e.message})" if e.message else ""), markup=False)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"
