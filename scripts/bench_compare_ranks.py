"""A comparison in N processes against one, end to end (issue 16).

    .venv/bin/python scripts/bench_compare_ranks.py --data-dir ../shared/data

Runs `vizlab compare mlp --activation relu,tanh,sigmoid,gelu` as a user would (a fresh process,
run logs and checkpoints on, no Visdom), with `--nproc 1` (one process, lockstep, torch's own
thread count) and with `--nproc N` (the runs dealt over N processes, the cores shared between
them), interleaved so that load drift hits both alike. Reports the median wall time of each (the
whole command: start-up, data loading, training, summary) and the training time the comparison
itself records (comparison.json's wall_time: for N processes, until the slowest rank is done),
and checks that both gave every run the same final test loss.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ACTIVATIONS = "relu,tanh,sigmoid,gelu"


def compare(data_dir: str, runs: Path, name: str, nproc: int, epochs: int) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    args = [sys.executable, "-m", "vizlab", "compare", "mlp", "--activation", ACTIVATIONS,
            "--data-dir", data_dir, "--runs-dir", str(runs), "--name", name, "--epochs",
            str(epochs), "--no-visdom", "--progress", "off", "--nproc", str(nproc)]
    start = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return wall, json.loads((runs / name / "comparison.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    walls: dict[int, list[float]] = {1: [], args.nproc: []}
    trains: dict[int, list[float]] = {1: [], args.nproc: []}
    losses: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        compare(args.data_dir, Path(tmp), "warm-up", 1, 1)  # first-use costs hit neither side
        for i in range(args.repeats):
            for n in (1, args.nproc):
                wall, summary = compare(args.data_dir, Path(tmp), f"n{n}-{i}", n, args.epochs)
                walls[n].append(wall)
                trains[n].append(summary["wall_time"])
                losses[n] = {v["variant"]: v["test_loss"] for v in summary["variants"]}
    print(f"mlp, 4 activations, {args.epochs} epochs, median of {args.repeats}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    for n in (1, args.nproc):
        print(f"--nproc {n}: {statistics.median(walls[n]):7.2f} s the command, "
              f"{statistics.median(trains[n]):7.2f} s training")
    ratio = statistics.median(walls[args.nproc]) / statistics.median(walls[1])
    print(f"--nproc {args.nproc} / --nproc 1: {ratio:.2f}x the wall time")
    same = all(abs(losses[1][k] - losses[args.nproc][k]) <= 1e-5 * abs(losses[1][k])
               for k in losses[1])
    print(f"same final test loss for every run: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
