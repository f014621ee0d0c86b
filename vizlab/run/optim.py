"""Optimizers and learning-rate schedules by name (the choices live in vizlab.config)."""

from __future__ import annotations

import math

import torch

from vizlab.config import RunConfig

# OneCycleLR's defaults, named: a resumed schedule sets them up itself.
ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 25.0, 1e4
ONECYCLE_MOMENTUM = (0.85, 0.95)


def make_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    params = list(params)
    name, lr, wd = cfg.optimizer, cfg.lr, cfg.weight_decay
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "rprop":
        return torch.optim.Rprop(params, lr=lr)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")  # config validation makes this a bug


def make_scheduler(cfg: RunConfig, optimizer, total_steps: int, start_step: int = 0):
    """A per-step schedule over ``total_steps``, standing at ``start_step`` (a resumed run), or
    None. Both schedules are closed-form in the step, so a schedule placed at step k gives the
    rate the same schedule reaches after k steps from the start (vizlab.run.train_state)."""
    if cfg.schedule == "none":
        return None
    last = start_step - 1
    if cfg.schedule == "onecycle":
        # Momentum cycling only where the optimizer has momentum/betas to cycle.
        cycle = cfg.optimizer in ("sgd", "adam", "adamw", "adamax") and not (
            cfg.optimizer == "sgd" and cfg.momentum == 0)
        if start_step:  # what OneCycleLR sets up itself on a fresh start
            for group in optimizer.param_groups:
                group["initial_lr"] = cfg.lr / ONECYCLE_DIV
                group["max_lr"] = cfg.lr
                group["min_lr"] = group["initial_lr"] / ONECYCLE_FINAL_DIV
                if cycle:
                    group["base_momentum"], group["max_momentum"] = ONECYCLE_MOMENTUM
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=max(total_steps, 2), cycle_momentum=cycle,
            div_factor=ONECYCLE_DIV, final_div_factor=ONECYCLE_FINAL_DIV,
            base_momentum=ONECYCLE_MOMENTUM[0], max_momentum=ONECYCLE_MOMENTUM[1], last_epoch=last)
    if start_step:
        for group in optimizer.param_groups:
            group["initial_lr"] = cfg.lr
    total = max(total_steps, 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _Cosine(total), last_epoch=last)


class _Cosine:
    """Cosine annealing from the base rate to 0 over ``total`` steps, in closed form (torch's
    CosineAnnealingLR chains each rate from the previous one, so it cannot be placed at a step)."""

    def __init__(self, total: int):
        self.total = total

    def __call__(self, step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.total) / self.total))
