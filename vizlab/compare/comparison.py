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

from vizlab.compare.summary_files import COMPARISON_CSV, COMPARISON_JSON, write_files
from vizlab.compare.target import default_target
from vizlab.compare.variants import Variant
from vizlab.errors import VizlabError
from vizlab.events import EpochEnd, Event, RunEnded

__all__ = ["COMPARISON_CSV", "COMPARISON_JSON", "Comparison", "Entry"]


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
    except StopIteration:
        entry.engine.finish("interrupted" if entry.engine.stopped else "finished")
    except FloatingPointError as exc:  # one diverging variant does not end the comparison
        entry.engine.finish("failed", str(exc))
    return False


class Comparison:
    def __init__(self, variants: list[Variant], comparison_dir: Path, sequential: bool = False,
                 env: str | None = None, target: float | None = None):
        self.variants, self.dir, self.sequential = variants, Path(comparison_dir), sequential
        # --target: the test accuracy whose time to reach is ranked (default: the dataset's).
        self.target = target if target is not None else default_target(variants[0].cfg.dataset)
        self.env = env or self.dir.name
        self.entries: list[Entry] = []
        self.started = datetime.now().astimezone().isoformat(timespec="seconds")

    def prepare(self, forward: Callable[[Entry, Event], None], stop) -> None:
        """Load the data once, build every variant's model and engine, create the run dirs."""
        import torch

        from vizlab.data.loading import load_splits
        from vizlab.models import build_model
        from vizlab.report import Reporter
        from vizlab.report.runlog import RunLogSink
        from vizlab.run.engine import Engine
        from vizlab.run.rundir import CONFIG_FILE, run_started_event, write_json_atomic
        from vizlab.run.training import resolve_device

        first = self.variants[0].cfg
        device = resolve_device(first.device)
        if first.threads:
            torch.set_num_threads(first.threads)
        splits = load_splits(first.dataset, first.data_dir, device=device,
                             limit_train=first.limit_train, limit_test=first.limit_test,
                             val_split=first.val_split, seed=first.seed)
        models = []
        for v in self.variants:  # build everything before writing anything
            torch.manual_seed(v.cfg.seed)
            models.append(build_model(v.cfg.model, v.cfg.activation, v.cfg.hidden).to(device))
        try:
            self.dir.mkdir(parents=True)
        except OSError as exc:
            raise VizlabError(f"cannot create comparison dir {self.dir}: "
                              f"{exc.strerror or exc}") from None
        for v, model in zip(self.variants, models):
            run_dir = self.dir / v.slug
            run_dir.mkdir()
            cfg = v.cfg.replace(runs_dir=str(self.dir), name=v.slug)
            write_json_atomic(run_dir / CONFIG_FILE, cfg.to_dict())
            entry = Entry(v, run_dir, params=sum(t.numel() for t in model.parameters()))
            reporter = Reporter([RunLogSink(run_dir), _Tap(entry, forward)])
            entry.engine = Engine(cfg, model, splits, device, reporter, stop=stop)
            entry.engine.reporter.handle(run_started_event(entry.engine, run_dir, splits, device))
            entry.engine.reporter.handle(entry.engine.sample_set_event())
            entry.steps = entry.engine.steps()
            self.entries.append(entry)
        self.write_summary([])  # the manifest replay needs, even if the comparison is killed

    def run(self) -> None:
        """Train every variant to the end (or until stopped)."""
        t0 = time.monotonic()
        if self.sequential:
            for entry in self.entries:
                while _advance(entry):
                    pass
        else:
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
        for entry in self.entries:
            entry.engine.reporter.close(entry.ended.status if entry.ended else "failed")
        self.wall_time = time.monotonic() - t0

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

        write_files(self.dir, {
            "started": self.started, "wall_time": getattr(self, "wall_time", None),
            "env": self.env, "axes": sorted({k for v in self.variants for k in v.axes}),
            "sequential": self.sequential, "target": self.target, "statistics": METHOD,
            "controlled": True, "differences": {},
            "activations": list(activation_axis(self.variants)),
            "members": [{"variant": v.name, "seed": v.cfg.seed, "run_dir": v.slug,
                         "axes": v.axes} for v in self.variants]}, rows)
