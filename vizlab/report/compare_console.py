"""The terminal during `vizlab compare`: a live table of every variant's latest metrics (updated
each epoch), then a ranked table. ``plain`` prints a line per variant per epoch instead."""

from __future__ import annotations

from typing import Any

from vizlab.events import EpochEnd, Event, RunEnded
from vizlab.report.fmt import num, pct, pm


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

    def handle(self, label: str, event: Event) -> None:
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

    def ranking(self, results: list[dict[str, Any]]) -> None:
        """The final ranking (from Comparison.results())."""
        if self.mode == "off":
            return
        if self.mode == "plain":
            for r in results:
                self.console.print(
                    f"#{r['rank']} {r['variant']}: final {pm(r['final_acc'], r['final_acc_spread'])}"
                    f" best {pm(r['best_acc'], r['best_acc_spread'])} test loss "
                    f"{num(r['test_loss'])} {num(r['epoch_time'], 2)} s/epoch", markup=False)
            return
        from rich.table import Table

        table = Table(title="ranking (mean ± spread over repeats)", title_justify="left")
        for col in ("#", "variant", "final accuracy", "best accuracy", "test loss", "s / epoch",
                    "parameters", "status"):
            table.add_column(col, justify="left" if col in ("variant", "status") else "right")
        for r in results:
            table.add_row(str(r["rank"]), r["variant"], pm(r["final_acc"], r["final_acc_spread"]),
                          pm(r["best_acc"], r["best_acc_spread"]), num(r["test_loss"]),
                          num(r["epoch_time"], 2), f"{r['params']:,}", r["status"])
        self.console.print(table)

