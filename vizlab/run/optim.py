"""Optimizers and learning-rate schedules by name (the choices live in vizlab.config)."""

from __future__ import annotations

import torch

from vizlab.config import RunConfig


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


def make_scheduler(cfg: RunConfig, optimizer, total_steps: int):
    """A per-step schedule over the whole run, or None."""
    if cfg.schedule == "onecycle":
        # Momentum cycling only where the optimizer has momentum/betas to cycle.
        cycle = cfg.optimizer in ("sgd", "adam", "adamw", "adamax") and not (
            cfg.optimizer == "sgd" and cfg.momentum == 0)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=max(total_steps, 2), cycle_momentum=cycle)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return None
