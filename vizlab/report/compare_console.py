"""The terminal during `vizlab compare`: a live table of every variant's latest metrics (updated
each epoch), then a ranked table. ``plain`` prints a line per variant per epoch instead."""

from __future__ import annotations

from typing import Any

from vizlab.events import Control, EpochEnd, Event, RunEnded
from vizlab.report.fmt import num, pct


class CompareConsole:
    def __init__(self, labels: list[str], epochs: int, mode: str = "rich", console=None):
        if console is None:
            from vizlab.term import console as shared_console

            console = shared_console()
        self.console, self.mode, self.epochs = console, mode, epochs
        self.rows: dict[str, dict[str, Any]] = {label: {"status": "waiting"} for label in labels}
        self._live = None

    def start(self) -> None:
        if self.mode == "rich":
            from rich.live import Live

            self._live = Live(self._table(), console=self.console, refresh_per_second=4,
                              transient=False)
            self._live.start()

    def handle(self, label: str | None, event: Event) -> None:
        """One event of the run ``label`` (None: the comparison's own answer to a command)."""
        if isinstance(event, Control):  # a steering command, as a run's terminal shows it
            from vizlab.report.control_pane import describe

            self.console.print(f"control: {describe(event)}", markup=False, highlight=False)
            return
        row = self.rows[label]
        if isinstance(event, EpochEnd):
            row.update(epoch=event.epoch, train_loss=event.train_loss, test_loss=event.test_loss,
                       acc=event.test_acc, best=event.best_acc, time=event.epoch_time,
                       status="training")
            if self.mode == "plain":
                self.console.print(
                    f"{label}  epoch {event.epoch}/{self.epochs}  train loss {event.train_loss:.4f}"
                    f"  test loss {event.test_loss:.4f}  acc {event.test_acc:6.2f}%", markup=False)
        elif isinstance(event, RunEnded):
            row["status"] = event.status
        else:
            return
        if self._live is not None:
            self._live.update(self._table())

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.stop()
            self._live = None
            if not self.console.is_terminal:
                self.console.line()  # Live leaves its last frame without a line end here

    def _table(self):
        from rich.table import Table

        table = Table(title="variants", title_justify="left")
        for col in ("variant", "epoch", "train loss", "test loss", "accuracy", "best", "status"):
            table.add_column(col, justify="left" if col in ("variant", "status") else "right")
        for label, r in self.rows.items():
            table.add_row(label, f"{r['epoch']}/{self.epochs}" if "epoch" in r else "-",
                          num(r.get("train_loss")), num(r.get("test_loss")),
                          pct(r.get("acc")), pct(r.get("best")), r["status"])
        return table

    def ranking(self, results: list[dict[str, Any]], target: float | None = None,
                differences: dict[str, Any] | None = None) -> None:
        """The final ranking (rows of vizlab.compare.ranking.rank), then what it means."""
        from vizlab.report import ranking_view as view

        if self.mode == "off":
            return
        head = view.header(target, short=True)
        keep = view.terminal_columns(results, self.console.width)
        if self.mode == "plain":
            for r in results:
                c = view.cells(r)
                self.console.print(f"#{c[0]} {c[1]}: " + "; ".join(
                    f"{head[i]} {c[i]}" for i in keep[2:]), markup=False)
        else:
            from rich import box
            from rich.table import Table
            from rich.text import Text

            table = Table(title="ranking", title_justify="left", box=box.SIMPLE_HEAD,
                          show_edge=False, pad_edge=False)
            for i in keep:
                table.add_column(head[i], justify="left" if i in (1, 9) else "right",
                                 overflow="fold", no_wrap=i != 1)
            for r in results:  # Text cells: variant names are never read as markup
                c = view.cells(r)
                table.add_row(*(Text(c[i]) for i in keep),
                              style="green" if view.is_tie(r) else None)
            self.console.print(table)
        for line in view.notes(results, differences, shown=keep):
            self.console.print(line, markup=False, highlight=False)
