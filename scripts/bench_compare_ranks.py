"""A comparison in N processes against one, end to end (issue 16).

    .venv/bin/python scripts/bench_compare_ranks.py --data-dir ../shared/data

Runs `vizlab compare mlp --activation relu,tanh,sigmoid,gelu` as a user would (a fresh process,
run logs and checkpoints on, no Visdom) three ways, interleaved so that load drift hits all alike:

- `--nproc 1`: one process, the four runs in lockstep, torch's own thread count (the cores);
- `--nproc 1 --threads 1`: the same on one thread (torch's thread pool collapses when another
  process takes a core: this separates that effect from the processes' own);
- `--nproc N`: the runs dealt over N processes, the cores shared out between them.

Reports the median wall time of each (the whole command: start-up, data loading, training,
summary) and the training time the comparison itself records (comparison.json's wall_time: for
N processes, until the slowest rank is done), and checks that N processes gave every run the final
test loss one process on one thread gives it.
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


def compare(data_dir: str, runs: Path, name: str, flags: list[str], epochs: int):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    args = [sys.executable, "-m", "vizlab", "compare", "mlp", "--activation", ACTIVATIONS,
            "--data-dir", data_dir, "--runs-dir", str(runs), "--name", name, "--epochs",
            str(epochs), "--no-visdom", "--progress", "off", *flags]
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
    ways = {"--nproc 1": ["--nproc", "1"], "--nproc 1 --threads 1": ["--threads", "1"],
            f"--nproc {args.nproc}": ["--nproc", str(args.nproc)]}
    walls: dict[str, list[float]] = {w: [] for w in ways}
    trains: dict[str, list[float]] = {w: [] for w in ways}
    losses: dict[str, dict] = {}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        compare(args.data_dir, Path(tmp), "warm-up", ["--threads", "1"], 1)  # first-use costs
        for i in range(args.repeats):
            for j, (way, flags) in enumerate(ways.items()):
                wall, summary = compare(args.data_dir, Path(tmp), f"w{j}-{i}", flags, args.epochs)
                loads.append(os.getloadavg()[0])
                print(f"  {way}: {wall:.2f} s", file=sys.stderr, flush=True)
                walls[way].append(wall)
                trains[way].append(summary["wall_time"])
                losses[way] = {v["variant"]: v["test_loss"] for v in summary["variants"]}
    print(f"mlp, 4 activations, {args.epochs} epochs on MNIST, median of {args.repeats}, "
          f"{os.cpu_count()} cores, load average {min(loads):.1f}-{max(loads):.1f}")
    for way in ways:
        print(f"{way:24} {statistics.median(walls[way]):7.2f} s the command, "
              f"{statistics.median(trains[way]):7.2f} s training")
    many = statistics.median(walls[f"--nproc {args.nproc}"])
    for way in list(ways)[:2]:
        print(f"--nproc {args.nproc} against {way}: {many / statistics.median(walls[way]):.2f}x "
              "the wall time")
    def differ(a: str, b: str) -> float:
        return max(abs(losses[a][k] - losses[b][k]) / abs(losses[b][k]) for k in losses[b])

    # One thread a process on both sides: the same sums in the same order, the same numbers.
    same = differ(f"--nproc {args.nproc}", "--nproc 1 --threads 1")
    # Other thread counts sum in another order: float noise, grown over the epochs.
    noise = differ("--nproc 1", "--nproc 1 --threads 1")
    print(f"final test losses, largest relative difference: --nproc {args.nproc} against "
          f"--nproc 1 --threads 1 {same:.1e}; --nproc 1 on its default threads against one "
          f"thread {noise:.1e}")
    return 0 if same <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
