"""The training state of a run: model, optimizer, learning-rate schedule and progress, built whole,
fresh or from a checkpoint, and checked before the run writes anything.

The resume rule, for every schedule: the learning rate at step k is the schedule of the run's
*current* ``--epochs`` evaluated at step k. With the same ``--epochs`` that is exactly the rate the
uninterrupted run had; with more epochs the schedule is re-planned as if the run had been started
with the new length (one-cycle and cosine are closed-form in the step, so this is one formula).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch

from vizlab.config import RunConfig
from vizlab.errors import VizlabError
from vizlab.run.optim import make_optimizer, make_scheduler

MAX_EPOCHS_RECORDED = 100_000


@dataclass
class Progress:
    """Where the run stands; what a checkpoint stores besides the tensors' states."""

    epoch: int = 1  # the epoch in progress (or next to start)
    step_in_epoch: int = 0  # batches of that epoch already trained
    global_step: int = 0
    best_acc: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch summaries
    epoch_losses: list[float] = field(default_factory=list)  # this epoch's step losses so far
    epoch_seconds: float = 0.0  # training time spent on this epoch so far

    @classmethod
    def from_dict(cls, d: Any) -> Progress:
        """A checkpoint's progress, type-checked (ValueError says what is wrong)."""
        if not isinstance(d, dict):
            raise ValueError("progress is not a dict")
        out = cls()
        for f in fields(cls):
            if f.name not in d:
                raise ValueError(f"progress has no {f.name}")
            value = d[f.name]
            if f.type == "int":
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            elif f.type == "float":
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                value = float(value) if ok else value
            elif f.name == "history":
                ok = (isinstance(value, list) and len(value) <= MAX_EPOCHS_RECORDED
                      and all(isinstance(h, dict) for h in value))
            else:  # epoch_losses
                ok = isinstance(value, list) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            if not ok:
                raise ValueError(f"progress.{f.name} has a wrong type or value")
            setattr(out, f.name, value)
        if out.epoch < 1:
            raise ValueError("progress.epoch must be at least 1")
        return out


class TrainState:
    """Model, optimizer, schedule and progress of one run (a pure container; the Engine steps it).

    ``checkpoint`` (RunDir.load_checkpoint()) resumes: every part is loaded and checked here, so a
    checkpoint of another model or a damaged one is one line, before anything is written.
    """

    def __init__(self, cfg: RunConfig, model: torch.nn.Module, steps_per_epoch: int,
                 checkpoint: dict[str, Any] | None = None, memory_format: str = "contiguous"):
        self.model = model
        self.memory_format = memory_format  # the layout it trains in (run.memory_format)
        self.optimizer = make_optimizer(cfg, model.parameters())
        self.progress = Progress()
        self.rng_state: torch.Tensor | None = None
        total = cfg.epochs * steps_per_epoch
        if checkpoint is not None:
            self._load(cfg, checkpoint, steps_per_epoch)
        self.scheduler = make_scheduler(cfg, self.optimizer, total,
                                        start_step=self.progress.global_step)

    def _load(self, cfg: RunConfig, state: dict[str, Any], steps_per_epoch: int) -> None:
        required = ("model", "optimizer", "progress", "torch_rng")
        missing = [k for k in required if k not in state]
        if missing:
            raise VizlabError(f"checkpoint has no {', '.join(missing)} (not a vizlab checkpoint)")
        try:
            self.model.load_state_dict(state["model"])
        except (RuntimeError, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise VizlabError(f"checkpoint does not fit model {cfg.model}: {first}") from None
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise VizlabError(f"checkpoint's optimizer state does not fit --optimizer "
                              f"{cfg.optimizer}: {exc}") from None
        try:
            self.progress = Progress.from_dict(state["progress"])
        except ValueError as exc:
            raise VizlabError(f"checkpoint: {exc}") from None
        if self.progress.step_in_epoch > steps_per_epoch:
            raise VizlabError("checkpoint: its epoch position does not fit this data and batch size")
        rng = state["torch_rng"]
        if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.dim() == 1):
            raise VizlabError("checkpoint: torch_rng is not a random-generator state")
        self.rng_state = rng

    def state_dict(self, cfg: RunConfig) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "progress": vars(self.progress).copy(),
            "torch_rng": torch.get_rng_state(),
            "config": cfg.to_dict(),
            "memory_format": self.memory_format,
        }
