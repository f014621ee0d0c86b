"""The adaptive thread policy against fixed thread counts, on a quiet and on a busy machine.

    .venv/bin/python scripts/bench_threads.py --data-dir ../shared/data [--epochs 3] [--repeats 5]

Each arm is a whole `vizlab run mlp` process (no Visdom); its figure is the median of its epoch
times after the first epoch (the policy's first look around is in epoch 1). "busy" starts one
`yes > /dev/null` per busy core for the arm's duration. Goals (issue 17): busy, the adaptive
epoch within 1.25x of the best fixed count; quiet, no slower than torch's default (all cores)
beyond noise (1.05x). Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def epoch_times(data_dir: str, epochs: int, threads: int | None, runs: Path) -> list[float]:
    name = f"t{threads or 'auto'}-{len(list(runs.iterdir()))}"
    cmd = [sys.executable, "-m", "vizlab", "run", "mlp", "--data-dir", data_dir, "--runs-dir",
           str(runs), "--name", name, "--no-visdom", "--progress", "off", "--epochs", str(epochs)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    subprocess.run(cmd, check=True, env=env)
    lines = (runs / name / "events.jsonl").read_text().splitlines()
    ends = [json.loads(x) for x in lines if '"epoch_end"' in x]
    return [e["epoch_time"] for e in ends[1:]]


def measure(data_dir, epochs, repeats, arms, busy: int) -> dict[str, float]:
    """Each arm's median epoch time. The arms take turns, repeat by repeat (a slow spell of the
    machine falls on every arm alike), and each repeat is a fresh process: on a 2-vCPU machine a
    whole process can run slower than the next, so one process per arm says too little."""
    hogs = [subprocess.Popen(["sh", "-c", "exec yes > /dev/null"]) for _ in range(busy)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            times: dict[str, list[float]] = {label: [] for label, _ in arms}
            for r in range(repeats):
                for label, threads in arms[r % len(arms):] + arms[:r % len(arms)]:
                    times[label] += epoch_times(data_dir, epochs, threads, Path(tmp))
            out = {label: statistics.median(t) for label, t in times.items()}
            for label, t in times.items():
                per_process = [statistics.median(t[i:i + epochs - 1])
                               for i in range(0, len(t), epochs - 1)]
                print(f"  {'busy' if busy else 'quiet'} {label:>9}: {out[label]:.2f} s an epoch "
                      f"(median of {len(t)}; each process: "
                      f"{', '.join(f'{x:.2f}' for x in per_process)})", flush=True)
            return out
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    arms = [("adaptive", None)] + [(f"{n} thread{'s' * (n > 1)}", n)
                                   for n in sorted({cores, max(1, cores // 2)}, reverse=True)]
    quiet = measure(args.data_dir, args.epochs, args.repeats, arms, busy=0)
    busy = measure(args.data_dir, args.epochs, args.repeats, arms, busy=1)
    best_busy = min(v for k, v in busy.items() if k != "adaptive")
    default = quiet[arms[1][0]]
    ok_busy = busy["adaptive"] <= 1.25 * best_busy
    ok_quiet = quiet["adaptive"] <= 1.05 * default
    print(f"busy:  adaptive {busy['adaptive']:.2f} s vs best fixed {best_busy:.2f} s = "
          f"{busy['adaptive'] / best_busy:.2f}x (goal <= 1.25x) {'ok' if ok_busy else 'MISSED'}")
    print(f"quiet: adaptive {quiet['adaptive']:.2f} s vs default {default:.2f} s = "
          f"{quiet['adaptive'] / default:.2f}x (goal <= 1.05x) {'ok' if ok_quiet else 'MISSED'}")
    return 0 if ok_busy and ok_quiet else 1


if __name__ == "__main__":
    sys.exit(main())
