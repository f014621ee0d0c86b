"""A comparison's ranking, from its runs' epoch results: one row per variant, best first.

Each row holds the mean final test accuracy with its 95% Student-t interval over the seeds, the
paired t-test against the best variant on per-seed final accuracy (matched by seed), Holm-corrected
across the variants tested, a verdict (best, tied with the best, worse, or untested), and the time
to the target accuracy. Every run's own numbers go with it, so the files let anyone recompute the
table (airbench keeps its per-run accuracies the same way).

Used by a training comparison (vizlab.compare.comparison) and by a comparison of existing runs.
"""

from __future__ import annotations

import statistics as pystats
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vizlab.compare.target import summarize_times, time_to_target
from vizlab.stats import LEVEL, holm, mean_interval, paired_t

ALPHA = 0.05
METHOD = {
    "interval": f"Student t, {LEVEL:.0%}, over the seeds of a variant",
    "test": "paired t-test against the best variant on per-seed final test accuracy "
            "(matched by seed), two-sided, Holm-corrected across the variants tested",
    "alpha": ALPHA,
    "distribution_free": "p_sign_flip: the exact sign-flip permutation test on the same "
                         "differences, reported beside the t-test, not used for the verdict",
    "time_to_target": "the first epoch end whose test accuracy reaches the target: its epoch, "
                      "global step, and the seconds of training and evaluation up to it",
}
# Verdicts against the best variant.
BEST, TIED, WORSE, UNTESTED, NO_RESULT = "best", "tied", "worse", "untested", "no result"
DIFFERS = "differs"  # better than the best on the seeds both have: only when their seeds differ


@dataclass(frozen=True)
class RunRecord:
    """One run of a variant: its seed and its epoch-end events (EpochEnd), in order."""

    seed: int
    run_dir: str
    status: str
    epochs: tuple
    params: int = 0


@dataclass(frozen=True)
class VariantRuns:
    name: str
    axes: dict
    runs: tuple[RunRecord, ...]


def _mean(values: Sequence[float]) -> float | None:
    return pystats.mean(values) if values else None


def _spread(values: Sequence[float]) -> float | None:
    """Sample standard deviation over repeats (0 for a single run)."""
    return pystats.stdev(values) if len(values) > 1 else (0.0 if values else None)


def _run_row(run: RunRecord, target: float) -> dict[str, Any]:
    last = run.epochs[-1] if run.epochs else None
    return {"seed": run.seed, "run_dir": run.run_dir, "status": run.status,
            "final_acc": last.test_acc if last else None,
            "best_acc": last.best_acc if last else None,
            "test_loss": last.test_loss if last else None,
            "time_to_target": time_to_target(run.epochs, target),
            "epochs": [{"epoch": x.epoch, "step": x.step, "train_loss": x.train_loss,
                        "test_loss": x.test_loss, "test_acc": x.test_acc, "time": x.epoch_time}
                       for x in run.epochs]}


def _variant_row(v: VariantRuns, target: float) -> dict[str, Any]:
    done = [r for r in v.runs if r.epochs]
    final = [r.epochs[-1].test_acc for r in done]
    best = [r.epochs[-1].best_acc for r in done]
    runs = [_run_row(r, target) for r in v.runs]
    mean, low, high = mean_interval(final) if final else (None, None, None)
    return {
        "variant": v.name, "axes": v.axes, "repeats": len(v.runs),
        "final_acc": mean, "final_acc_ci": None if low is None else [low, high],
        "final_acc_spread": _spread(final),
        "best_acc": _mean(best), "best_acc_spread": _spread(best),
        "test_loss": _mean([r.epochs[-1].test_loss for r in done]),
        "epoch_time": _mean([pystats.mean(x.epoch_time for x in r.epochs) for r in done]),
        "params": max((r.params for r in v.runs), default=0),
        "status": ",".join(sorted({r.status for r in v.runs})),
        "time_to_target": summarize_times([r["time_to_target"] for r in runs], target),
        "vs_best": None, "verdict": NO_RESULT if mean is None else UNTESTED,
        "runs": runs,
    }


def _per_seed(row: dict[str, Any]) -> dict[int, float]:
    """Final accuracy by seed (the first run of a seed, should one repeat)."""
    out: dict[int, float] = {}
    for run in row["runs"]:
        if run["final_acc"] is not None:
            out.setdefault(run["seed"], run["final_acc"])
    return out


def rank(variants: Sequence[VariantRuns], target: float) -> list[dict[str, Any]]:
    """The ranking rows, best first (see the module docstring)."""
    rows = [_variant_row(v, target) for v in variants]
    rows.sort(key=lambda r: -1.0 if r["final_acc"] is None else r["final_acc"], reverse=True)
    for position, row in enumerate(rows, start=1):
        row["rank"] = position
    if not rows or rows[0]["final_acc"] is None:
        return rows
    top = rows[0]
    top["verdict"] = BEST
    top_seeds = _per_seed(top)
    tested = []
    for row in rows[1:]:
        mine = _per_seed(row)
        seeds = sorted(set(mine) & set(top_seeds))
        if row["final_acc"] is None or len(seeds) < 2:
            continue
        test = paired_t([top_seeds[s] for s in seeds], [mine[s] for s in seeds])
        row["vs_best"] = {"seeds": seeds, "mean_diff": test.mean_diff,
                          "diff_ci": [test.diff_low, test.diff_high], "t": test.t, "p": test.p,
                          "p_holm": None, "p_sign_flip": test.p_sign_flip}
        tested.append(row)
    for row, adjusted in zip(tested, holm([r["vs_best"]["p"] for r in tested])):
        row["vs_best"]["p_holm"] = adjusted
        if adjusted > ALPHA:
            row["verdict"] = TIED
        else:
            row["verdict"] = WORSE if row["vs_best"]["mean_diff"] > 0 else DIFFERS
    return rows


def ties(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The variants that cannot be told apart from the best (the best included)."""
    return [r["variant"] for r in rows if r["verdict"] in (BEST, TIED)]
