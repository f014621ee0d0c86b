"""Comparison speed, as a ratio measured in one run (issue 7's goal).

    .venv/bin/python scripts/bench_compare.py --data-dir ../shared/data

Four activations of `mlp`, one epoch, trained in lockstep by `vizlab compare`'s engine against four
separate single runs of the same variants (each loading its data), run logs on, no Visdom.
Goal: at most 1.05x their sum.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ACTIVATIONS = "relu,leaky_relu,selu,tanh"


def lockstep(data_dir: str, runs: Path, threads) -> float:
    from vizlab.compare.comparison import Comparison
    from vizlab.compare.variants import expand, parse_axes
    from vizlab.run.engine import StopFlag

    axes, shared = parse_axes({"model": "mlp", "activation": ACTIVATIONS, "data_dir": data_dir,
                               "epochs": 1, "visdom": False, "progress": "off",
                               "threads": threads})
    start = time.perf_counter()
    comparison = Comparison(expand(axes, shared), runs, f"cmp-{time.monotonic_ns()}")
    comparison.prepare()
    comparison.open(lambda entry, event: None, StopFlag())
    comparison.run()
    return time.perf_counter() - start


def separate(data_dir: str, runs: Path, threads) -> float:
    from vizlab.config import build_config
    from vizlab.run.training import train

    start = time.perf_counter()
    for act in ACTIVATIONS.split(","):
        train(build_config("mlp", activation=act, data_dir=data_dir, epochs=1, visdom=False,
                           progress="off", runs_dir=str(runs), threads=threads))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    lock_t, sep_t = [], []
    with tempfile.TemporaryDirectory() as tmp:
        separate(args.data_dir, Path(tmp), args.threads)  # warm-up: first-use costs hit neither
        for _ in range(args.repeats):  # interleaved, so load drift hits both alike
            lock_t.append(lockstep(args.data_dir, Path(tmp), args.threads))
            sep_t.append(separate(args.data_dir, Path(tmp), args.threads))
    lock_s, sep_s = statistics.median(lock_t), statistics.median(sep_t)
    ratio = lock_s / sep_s
    print(f"four activations, one epoch each, median of {args.repeats}")
    print(f"lockstep comparison   {lock_s:7.2f} s")
    print(f"four separate runs    {sep_s:7.2f} s")
    print(f"ratio {ratio:.3f}x (goal <= 1.05x) {'ok' if ratio <= 1.05 else 'MISSED'}")
    return 0 if ratio <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
