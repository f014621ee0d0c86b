"""Training speed, printed as ratios measured in one run (issue 3's speed goals).

    .venv/bin/python scripts/bench_train.py --data-dir ../shared/data

1. mlp with seed 004's settings (784-200-200-10, leaky_relu, batch 200, SGD lr 0.01, no momentum),
   one epoch (train + test): vizlab's engine against seed 004's loop with its Visdom calls removed
   (torchvision dataset + DataLoader + ToTensor per batch). Goal: at least 5x faster.
2. vizlab's engine against a minimal hand-written loop over the same resident tensors. Goal: at most
   1.10x its time.
3. `vizlab --help` against a bare `python -c pass`. Goal: under 0.3 s more.
4. The engine's look at its steering inbox (vizlab.control: one attribute read per step), per
   epoch, as a share of the engine's epoch. Goal: under 0.1%, i.e. nothing measurable.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import timeit

import torch
import torch.nn as nn
import torch.nn.functional as F


def seed_004_epoch(data_dir: str) -> float:
    """Seed 004's loop, Visdom calls removed, on the CPU; one epoch of train + test."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_loader = torch.utils.data.DataLoader(
        datasets.MNIST(data_dir, train=True, download=False, transform=tf),
        batch_size=200, shuffle=True)
    test_loader = torch.utils.data.DataLoader(
        datasets.MNIST(data_dir, train=False, transform=tf), batch_size=200, shuffle=True)
    net = nn.Sequential(nn.Linear(784, 200), nn.LeakyReLU(inplace=True), nn.Linear(200, 200),
                        nn.LeakyReLU(inplace=True), nn.Linear(200, 10), nn.LeakyReLU(inplace=True))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    criteon = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for data, target in train_loader:
        loss = criteon(net(data.view(-1, 28 * 28)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_loss, correct = 0.0, 0
    for data, target in test_loader:
        logits = net(data.view(-1, 28 * 28))
        test_loss += criteon(logits, target).item()
        correct += logits.argmax(dim=1).eq(target).float().sum().item()
    return time.perf_counter() - start


def seed_config(data_dir: str):
    from vizlab.config import build_config

    return build_config("mlp", data_dir=data_dir, batch_size=200, optimizer="sgd", lr=0.01,
                        momentum=0.0, schedule="none", epochs=1, visdom=False, progress="off")


def engine_epoch(cfg, splits) -> float:
    from vizlab.report import NullSink
    from vizlab.run.prepare import build_engine, prepare_run

    prep = prepare_run(cfg.replace(device="cpu"), device=torch.device("cpu"), splits=splits)
    engine = build_engine(prep, None, NullSink())
    start = time.perf_counter()
    engine.run()
    return time.perf_counter() - start


def minimal_epoch(splits) -> float:
    """The least a loop over resident tensors can do: train, then one test pass with accuracy."""
    from vizlab.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = splits.train_x, splits.train_y
    start = time.perf_counter()
    perm = torch.randperm(len(y))
    for i in range(0, len(y), 200):
        idx = perm[i:i + 200]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = model(splits.test_x)
        F.cross_entropy(logits, splits.test_y).item()
        (logits.argmax(1) == splits.test_y).sum().item()
    return time.perf_counter() - start


def inbox_check_seconds(repeats: int = 5, number: int = 2_000_000) -> float:
    """Seconds one step's inbox check adds: the engine's `... or inbox.pending` against the same
    expression without it (the inbox empty, as in a run nobody steers)."""
    from vizlab.control import Inbox

    names = {"inbox": Inbox(), "due": False}
    with_check = min(timeit.repeat("due or inbox.pending", globals=names, repeat=repeats,
                                   number=number))
    without = min(timeit.repeat("due or False", globals=names, repeat=repeats, number=number))
    return max(with_check - without, 0.0) / number


def command_seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from vizlab.data.loading import load_splits

    cfg = seed_config(args.data_dir)
    splits = load_splits("mnist", args.data_dir)
    seed_t, engine_t, minimal_t = [], [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits all three alike
        seed_t.append(seed_004_epoch(args.data_dir))
        engine_t.append(engine_epoch(cfg, splits))
        minimal_t.append(minimal_epoch(splits))
    seed_s, engine_s, minimal_s = map(statistics.median, (seed_t, engine_t, minimal_t))
    bare = command_seconds([sys.executable, "-c", "pass"], 5)
    helps = command_seconds([sys.executable, "-m", "vizlab", "--help"], 5)

    speedup, overhead, help_extra = seed_s / engine_s, engine_s / minimal_s, helps - bare
    steps = -(-len(splits.train_y) // cfg.batch_size)
    check_s = inbox_check_seconds()
    steering = check_s * steps / engine_s
    print(f"threads {args.threads}, median of {args.repeats}, one epoch = train + test")
    print(f"seed 004 loop (DataLoader)   {seed_s:7.3f} s")
    print(f"vizlab engine                {engine_s:7.3f} s   {speedup:5.1f}x faster than seed 004 "
          f"(goal >= 5x) {'ok' if speedup >= 5 else 'MISSED'}")
    print(f"minimal resident-tensor loop {minimal_s:7.3f} s   engine/minimal {overhead:.3f}x "
          f"(goal <= 1.10x) {'ok' if overhead <= 1.10 else 'MISSED'}")
    print(f"vizlab --help {helps:.3f} s, python -c pass {bare:.3f} s: +{help_extra:.3f} s "
          f"(goal < 0.3 s) {'ok' if help_extra < 0.3 else 'MISSED'}")
    print(f"steering inbox check {check_s * 1e9:.0f} ns/step x {steps} steps = "
          f"{check_s * steps * 1e6:.1f} us/epoch, {steering:.5%} of the engine's epoch "
          f"(goal < 0.1%) {'ok' if steering < 0.001 else 'MISSED'}")
    return 0 if speedup >= 5 and overhead <= 1.10 and help_extra < 0.3 and steering < 0.001 \
        else 1


if __name__ == "__main__":
    sys.exit(main())
