"""Comparison speed, as a ratio measured in one run (issue 7's goal).

    .venv/bin/python scripts/bench_compare.py --data-dir ../shared/data

Four activations of `mlp`, one epoch, trained in lockstep (one step of each in turn) against the
same four trained one after another. Both arms are the same `vizlab compare` machinery
(``Comparison``, ``sequential=True`` for the second): the data is loaded once in each, and the
run logs and checkpoints are the same, so the ratio is the cost of lockstep alone. No Visdom.
Goal: at most 1.05x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ACTIVATIONS = "relu,leaky_relu,selu,tanh"


def timed(data_dir: str, runs: Path, threads, sequential: bool) -> float:
    """Seconds to prepare (load the data, build the models) and train the four variants."""
    from vizlab.compare.comparison import Comparison
    from vizlab.compare.variants import expand, parse_axes
    from vizlab.run.engine import StopFlag

    axes, shared = parse_axes({"model": "mlp", "activation": ACTIVATIONS, "data_dir": data_dir,
                               "epochs": 1, "visdom": False, "progress": "off",
                               "threads": threads})
    start = time.perf_counter()
    comparison = Comparison(expand(axes, shared), runs, f"cmp-{time.monotonic_ns()}",
                            sequential=sequential)
    comparison.prepare()
    comparison.open(lambda entry, event: None, StopFlag())
    comparison.run()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    lock_t, sep_t = [], []
    with tempfile.TemporaryDirectory() as tmp:
        timed(args.data_dir, Path(tmp), args.threads, True)  # warm-up: first-use costs hit neither
        for _ in range(args.repeats):  # interleaved, so load drift hits both alike
            lock_t.append(timed(args.data_dir, Path(tmp), args.threads, sequential=False))
            sep_t.append(timed(args.data_dir, Path(tmp), args.threads, sequential=True))
    lock_s, sep_s = statistics.median(lock_t), statistics.median(sep_t)
    ratio = lock_s / sep_s
    print(f"four activations, one epoch each, median of {args.repeats}")
    print(f"lockstep comparison   {lock_s:7.2f} s")
    print(f"one after another     {sep_s:7.2f} s")
    print(f"ratio {ratio:.3f}x (goal <= 1.05x) {'ok' if ratio <= 1.05 else 'MISSED'}")
    return 0 if ratio <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
