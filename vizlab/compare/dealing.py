"""Dealing a comparison's runs (every variant, repeats included) over the processes of a
distributed comparison, so that the processes finish at about the same time.

A run's cost is an estimate of its training work: the FLOPs of one sample's forward pass, counted
on the meta device (no memory, no weights; torch.utils.flop_counter), times the samples it trains
on, plus a fixed allowance per step for the work that does not grow with the batch (kernel
launches, the optimizer step, Python). Parameter count is a poor stand-in: the CNN has an eighth
of the MLP's parameters and needs 2.4x its FLOPs (the CNN epoch takes 5.7x the MLP's here).
The runs are then dealt largest first, each to the least loaded process (LPT: within 4/3 of the
best possible finishing time). The deal is a pure function of the variants and the number of
processes; a distributed comparison still computes it on rank 0 alone and sends it to every rank,
so that a user model behaving differently on one rank cannot give two ranks different deals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from vizlab.compare.variants import Variant

STEP_ALLOWANCE = 1e7  # FLOPs-equivalent of one step's fixed work (about 0.3 ms on one CPU core)
TRAIN_SAMPLES = 60_000  # MNIST and Fashion-MNIST; only the ratio to STEP_ALLOWANCE matters


def deal(costs: Sequence[float], ranks: int) -> list[list[int]]:
    """Indices of ``costs`` for each of ``ranks`` processes: largest first onto the least loaded
    (ties: the lower index, the lower rank), each process's share in index order."""
    if ranks < 1:
        raise ValueError("at least one process")
    loads = [0.0] * ranks
    shares: list[list[int]] = [[] for _ in range(ranks)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        rank = min(range(ranks), key=lambda r: (loads[r], r))
        loads[rank] += costs[i]
        shares[rank].append(i)
    return [sorted(share) for share in shares]


def forward_flops(model: str, activation: str, hidden) -> float:
    """FLOPs of one sample's forward pass (matrix products and convolutions), counted on the meta
    device; for a model that cannot run there, twice its parameter count (a dense net's FLOPs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vizlab.models import build_model

    try:
        with torch.device("meta"):
            net = build_model(model, activation, hidden).eval()  # no training-only paths
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                net(torch.empty(1, 1, 28, 28))
        flops = float(counter.get_total_flops())
        if flops > 0:
            return flops
    except Exception:  # a user model that needs real tensors: fall back to its size
        pass
    net = build_model(model, activation, hidden)
    return 2.0 * sum(p.numel() for p in net.parameters())


def run_cost(variant: Variant, flops: float) -> float:
    """Training work of one run: forward and backward FLOPs over every sample and epoch, plus the
    per-step allowance."""
    cfg = variant.cfg
    samples = max(1, min(cfg.limit_train or TRAIN_SAMPLES, TRAIN_SAMPLES) - cfg.val_split)
    steps = math.ceil(samples / cfg.batch_size)
    return cfg.epochs * (3.0 * flops * samples + STEP_ALLOWANCE * steps)


def deal_variants(variants: Sequence[Variant], ranks: int) -> list[list[int]]:
    """Each rank's share of ``variants`` (indices), balanced by ``run_cost``."""
    flops: dict[tuple, float] = {}  # one count per architecture
    costs = []
    for v in variants:
        key = (v.cfg.model, v.cfg.activation, v.cfg.hidden)
        if key not in flops:
            flops[key] = forward_flops(*key)
        costs.append(run_cost(v, flops[key]))
    return deal(costs, ranks)


def share_label(variants: Sequence[Variant], share: Sequence[int]) -> str:
    """The runs of one share, for the terminal and error lines: "relu, tanh (seed 1)"."""
    repeats = len({v.cfg.seed for v in variants}) > 1
    names = [variants[i].name + (f" (seed {variants[i].cfg.seed})" if repeats else "")
             for i in share]
    return ", ".join(names) if names else "no runs"
