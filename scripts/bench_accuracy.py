"""Accuracy of every model with its default settings on real MNIST (issue 3's accuracy goals).

    .venv/bin/python scripts/bench_accuracy.py --data-dir ../shared/data [--models cnn,mlp]

Trains each model with `vizlab run`'s defaults (no Visdom), prints a Markdown table for README.md
(model, parameters, epochs, accuracy, time to 99%, wall time) and exits 1 if a model misses its goal.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

GOALS = {"mlp-raw": 97.5, "mlp": 98.0, "cnn": 99.0, "inception": 99.0, "resnet": 99.0}
TARGET = 99.0


def time_to(events, target: float) -> str:
    """Seconds of training (epoch times, evaluation included) until the test accuracy first
    reached ``target``, with the epoch; "not reached" otherwise."""
    spent = 0.0
    for e in events:
        if e.kind == "epoch_end":
            spent += e.epoch_time
            if e.test_acc >= target:
                return f"{spent:.1f} s (epoch {e.epoch})"
    return "not reached"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--models", default=",".join(GOALS))
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    from vizlab.config import build_config
    from vizlab.report.runlog import read_events
    from vizlab.run.training import train

    rows, ok = [], True
    with tempfile.TemporaryDirectory() as runs:
        for name in args.models.split(","):
            cfg = build_config(name, data_dir=args.data_dir, runs_dir=runs, visdom=False,
                               progress="plain", threads=args.threads)
            start = time.perf_counter()
            ended, run_dir = train(cfg)
            wall = time.perf_counter() - start
            events = list(read_events(run_dir))
            params = next(e.params for e in events if e.kind == "run_started")
            acc, goal = ended.test_acc, GOALS.get(name, 0.0)
            ok &= acc >= goal
            rows.append(f"| `{name}` | {params:,} | {cfg.epochs} | {acc:.2f}% | {goal:.1f}% "
                        f"| {time_to(events, TARGET)} | {wall:.0f} s |")
            print(rows[-1], flush=True)
    print(f"\n| model | parameters | epochs | test accuracy | goal | time to {TARGET:g}% "
          "| wall time |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
