"""`vizlab compare`: train variants side by side, fairly, and rank them.

Fair means: every variant sees the same samples in the same order (the data order is a function of
(seed, epoch), shared by all), the data is loaded once and shared, and variants of the same
architecture start from the same weights (the model is built right after seeding). Variants that
share a batch size train in lockstep, one step each in turn, so their curves move together; groups
with other batch sizes take turns epoch by epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vizlab.compare.steering import ComparisonHelm
from vizlab.compare.summary_files import render_files
from vizlab.compare.target import default_target
from vizlab.compare.variants import Variant
from vizlab.control import Inbox
from vizlab.events import EpochEnd, Event, RunEnded
from vizlab.names import check_name
from vizlab.run.rundir import RunDir
from vizlab.run_files import COMPARISON_CSV, COMPARISON_JSON

__all__ = ["COMPARISON_CSV", "COMPARISON_JSON", "Comparison", "Entry", "worst_status"]

STATUS_ORDER = ("failed", "interrupted", "stopped", "unfinished", "finished")


def worst_status(statuses) -> str:
    """A comparison's status: the worst of its variants' (failed > interrupted > ... > finished)."""
    found = set(statuses)
    return next((s for s in STATUS_ORDER if s in found), "finished")


@dataclass
class Entry:
    """One variant (one repeat) being trained."""

    variant: Variant
    run_dir: Path
    engine: Any = None
    steps: Any = None  # the engine's step iterator
    ended: RunEnded | None = None
    epochs: list[EpochEnd] = field(default_factory=list)
    params: int = 0
    rundir: Any = None  # its RunDir, locked while it trains
    inbox: Inbox = field(default_factory=Inbox)  # its engine's commands (vizlab.compare.steering)


class _Tap:
    """Forwards one variant's events to the comparison's sinks, labelled with the variant."""

    def __init__(self, entry: Entry, forward: Callable[[Entry, Event], None]):
        self.entry, self.forward = entry, forward

    def handle(self, event: Event) -> None:
        if isinstance(event, EpochEnd):
            self.entry.epochs.append(event)
        elif isinstance(event, RunEnded):
            self.entry.ended = event
        self.forward(self.entry, event)

    def close(self, status: str = "finished") -> None:
        pass


def _advance(entry: Entry) -> bool:
    """One step of one variant; False once it has nothing left to do."""
    if entry.ended is not None:
        return False
    try:
        next(entry.steps)
        return True
    except StopIteration:  # a dropped variant ends "stopped", Ctrl-C "interrupted"
        entry.engine.finish(entry.engine.stop_status if entry.engine.stopped else "finished")
    except FloatingPointError as exc:  # one diverging variant does not end the comparison
        entry.engine.finish("failed", str(exc))
    return False


class Comparison:
    """Variants trained side by side into one comparison dir under ``runs_dir``: each variant an
    ordinary run dir (prepared, checkpointed and resumable like any run), plus comparison.json
    and comparison.csv. ``inbox``: the commands of the comparison's doors (drop VARIANT,
    vizlab.compare.steering), looked at between lockstep rounds; None when nobody steers."""

    def __init__(self, variants: list[Variant], runs_dir: str | Path, name: str,
                 sequential: bool = False, env: str | None = None, target: float | None = None,
                 inbox: Inbox | None = None):
        check_name("--name", name)
        self.variants, self.sequential = variants, sequential
        self.runs_dir, self.name = Path(runs_dir), name
        self.dir = self.runs_dir / name
        self.env = env or name
        # --target: the test accuracy whose time to reach is ranked (default: the dataset's).
        self.target = target if target is not None else default_target(variants[0].cfg.dataset)
        self.entries: list[Entry] = []
        self.inbox = inbox
        self.helm: ComparisonHelm | None = None
        self._prepared: list = []  # vizlab.run.prepare.Prepared, one per variant
        self.rundir: RunDir | None = None
        self.status = "unfinished"
        self.wall_time: float | None = None
        self.started = datetime.now().astimezone().isoformat(timespec="seconds")

    def prepare(self, shared=None, members: list[int] | None = None) -> None:
        """Prepare every variant (the data loaded once, shared): every input checked, nothing
        written. One process of a distributed comparison (vizlab.compare.ranks) prepares only
        its ``members`` (indices into ``variants``) on the data of ``shared``, a Prepared."""
        from vizlab.run.prepare import prepare_run

        for i in range(len(self.variants)) if members is None else members:
            v = self.variants[i]
            cfg = v.cfg.replace(runs_dir=str(self.dir), name=v.slug)
            prep = prepare_run(cfg, device=shared and shared.device,
                               splits=shared and shared.splits, adaptive_threads=False)
            shared = shared or prep
            self._prepared.append((v, prep))

    def open_dir(self) -> None:
        """Create and lock the comparison dir, with the manifest replay needs (even if the
        comparison is killed)."""
        self.rundir = RunDir.create(self.runs_dir, self.name, self.name).lock()
        try:
            self.write_summary([])
        except BaseException:
            self.release()
            raise

    def open(self, forward: Callable[[Entry | None, Event], None], stop,
             create_dir: bool = True) -> None:
        """Create the comparison dir (unless ``create_dir`` is False: a distributed comparison's
        rank 0 did) and every prepared variant's run dir (each locked), and their engines."""
        from vizlab.report import Reporter
        from vizlab.report.runlog import RunLogSink
        from vizlab.run.prepare import build_engine, run_started_event

        if self.inbox is not None:  # a command no run can answer: shown as a variant-less event
            self.helm = ComparisonHelm(self.inbox, lambda event: forward(None, event))
        if create_dir:
            self.open_dir()
        try:
            for v, prep in self._prepared:
                run_dir = RunDir.create(self.dir, v.slug, v.slug).lock()
                entry = Entry(v, run_dir.path, rundir=run_dir,
                              params=sum(t.numel() for t in prep.state.model.parameters()))
                self.entries.append(entry)
                run_dir.write_config(prep.cfg)
                reporter = Reporter([RunLogSink(run_dir.path), _Tap(entry, forward)])
                entry.engine = build_engine(prep, run_dir, reporter, stop, inbox=entry.inbox)
                reporter.handle(run_started_event(entry.engine, run_dir))
                reporter.handle(entry.engine.sample_set_event())
                entry.steps = entry.engine.steps()
        except BaseException as exc:
            self._end_all("failed", f"{type(exc).__name__}: {exc}")
            self.release()
            raise
        finally:
            self._prepared = []

    def run(self) -> None:
        """Train every variant to the end (or until stopped). Whatever ends the comparison, every
        variant's log gets its run_ended with its real status and is closed, and the run dirs
        are let go; ``status`` says how the comparison as a whole ended."""
        t0 = time.monotonic()
        try:
            self._train()
        except BaseException as exc:
            self.wall_time = time.monotonic() - t0
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            self._end_all(status, f"{type(exc).__name__}: {exc}")
            raise
        self.wall_time = time.monotonic() - t0
        self._end_all("failed", "ended without a result")

    def _end_all(self, status: str, message: str) -> None:
        """Give every variant not ended yet its run_ended, close every log with its variant's
        real status, let go of the run dirs, and settle the comparison's status."""
        for entry in self.entries:
            try:
                if entry.ended is None and entry.engine is not None:
                    entry.engine.finish(status, message)
                if entry.engine is not None:
                    entry.engine.reporter.close(entry.ended.status if entry.ended else status)
            finally:
                entry.rundir.unlock()
        self.status = worst_status(e.ended.status if e.ended else status for e in self.entries)

    def release(self) -> None:
        if self.rundir is not None:
            self.rundir.unlock()

    def adopt(self, entries: list[Entry], wall_time: float) -> None:
        """Add the variants other processes trained (rebuilt from their events by a distributed
        comparison's rank 0), in variant order, for ``results`` and ``write_summary``; the
        comparison's status and wall time become the whole job's."""
        order = {v.slug: i for i, v in enumerate(self.variants)}
        self.entries = sorted([*self.entries, *entries], key=lambda e: order[e.variant.slug])
        self.status = worst_status(e.ended.status if e.ended else "failed" for e in self.entries)
        self.wall_time = wall_time

    def _train(self) -> None:
        if self.sequential:
            for entry in self.entries:
                while _advance(entry):
                    self._steer()
            return
        groups: dict[int, list[Entry]] = {}
        for entry in self.entries:
            groups.setdefault(entry.variant.cfg.batch_size, []).append(entry)
        epochs = self.variants[0].cfg.epochs
        for epoch in range(1, epochs + 2):  # +1: the last epoch ends on the next advance
            for group in groups.values():
                active = list(group)
                while active:
                    active = [e for e in active
                              if e.engine.progress.epoch <= epoch and _advance(e)]
                    self._steer()

    def _steer(self) -> None:
        """Between two rounds: hand the doors' commands (drop VARIANT) to the runs."""
        if self.helm is not None and self.inbox.pending:
            self.helm.obey(self.entries)

    # -- results -------------------------------------------------------------------------------
    def results(self) -> list[dict[str, Any]]:
        """One row per variant (repeats folded into mean, interval and test), best first."""
        from vizlab.compare.ranking import RunRecord, VariantRuns, rank

        by_name: dict[str, list[Entry]] = {}
        for entry in self.entries:
            by_name.setdefault(entry.variant.name, []).append(entry)
        return rank([VariantRuns(name, entries[0].variant.axes, tuple(
            RunRecord(e.variant.cfg.seed, str(e.run_dir), e.ended.status if e.ended else "failed",
                      tuple(e.epochs), e.params) for e in entries))
            for name, entries in by_name.items()], self.target)

    def write_summary(self, rows: list[dict[str, Any]]) -> None:
        from vizlab.compare.ranking import METHOD
        from vizlab.report.compare_board import activation_axis

        manifest = {
            "started": self.started, "wall_time": self.wall_time, "status": self.status,
            "env": self.env, "dir": str(self.dir.absolute()),
            "axes": sorted({k for v in self.variants for k in v.axes}),
            "sequential": self.sequential, "target": self.target, "statistics": METHOD,
            "controlled": True, "differences": {},
            "steering": self.variants[0].cfg.control,  # it took commands (drop VARIANT)
            "activations": list(activation_axis(self.variants)),
            "members": [{"variant": v.name, "seed": v.cfg.seed, "run_dir": v.slug,
                         "axes": v.axes} for v in self.variants]}
        for name, data in render_files(manifest, rows).items():
            self.rundir.write_bytes(name, data)
