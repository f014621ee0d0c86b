"""The train/eval loop for every model. It emits events and knows nothing of Visdom, Rich or files.

Speed rules of the hot loop: batches are index slices of resident tensors (no DataLoader), per-step
losses stay on the device in a small buffer read back every few steps (never ``.item()`` per step),
and nothing in it waits on I/O. Data order is a pure function of (seed, epoch), so a resumed run sees
exactly the batches an uninterrupted one would.

With a ``shard`` (vizlab.distributed.group.Shard: one process of several, DistributedDataParallel) each
process trains on its strided slice of every global batch and the read-backs become agreed points
where the processes also decide together whether to stop. Without one (a single process) the loop
has no collective and no extra sync.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from vizlab.config import RunConfig
from vizlab.events import (
    EpochEnd,
    Histograms,
    Predictions,
    RunEnded,
    SampleSet,
    TrainSteps,
    encode_images,
)
from vizlab.run.evaluate import evaluate
from vizlab.run.threads import FixedThreads
from vizlab.run.train_state import TrainState

READBACK_STEPS = 64  # read losses back at least this often (steps) ...
READBACK_SECONDS = 0.5  # ... and at least this often (seconds), for live progress
MISCLASSIFIED_SHOWN = 32
SAMPLE_SEED = 1234  # the sample images are the same for every run and every seed


class StopFlag:
    """Set from a signal handler; the loop checks it after each step."""

    requested = False


def steps_per_epoch(cfg: RunConfig, n_train: int) -> int:
    return math.ceil(n_train / cfg.batch_size)


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def sample_indices(n_test: int, count: int) -> list[int]:
    gen = torch.Generator().manual_seed(SAMPLE_SEED)
    return sorted(torch.randperm(n_test, generator=gen)[:count].tolist())


class Engine:
    """Trains one run's TrainState on resident data, emitting events to ``reporter``.

    Built once, whole, by vizlab.run.prepare: ``checkpoints`` (the RunDir, or None for a rank
    that does not write) takes the state at epoch ends and on a stop; ``shard`` is this process's
    part of a distributed run (None: one process); ``threads`` the CPU thread policy.
    """

    def __init__(self, cfg: RunConfig, state: TrainState, splits, device: torch.device,
                 reporter, checkpoints=None, stop: StopFlag | None = None, shard=None,
                 threads=None):
        self.cfg, self.state, self.data, self.device = cfg, state, splits, device
        self.model, self.optimizer, self.scheduler = state.model, state.optimizer, state.scheduler
        self.progress = state.progress
        self.reporter, self.checkpoints = reporter, checkpoints
        self.stop = stop or StopFlag()
        self.shard = shard
        self.threads = threads or FixedThreads()  # told every chunk's step time (run.threads)
        # What the steps call: the model itself, or (--compile) its compiled form; both share
        # the parameters, so checkpoints and evaluation see the same weights.
        self.train_forward = torch.compile(self.model) if cfg.compile and shard is None \
            else self.model
        self.steps_per_epoch = steps_per_epoch(cfg, len(splits.train_y))
        self.samples = sample_indices(len(splits.test_y), cfg.samples)
        self.stopped = False
        if state.rng_state is not None:  # a resumed run draws what the uninterrupted one would
            torch.set_rng_state(state.rng_state)

    def autocast(self):
        """--amp bf16: forward passes in bfloat16 where autocast deems it safe; else nothing."""
        if self.cfg.amp != "bf16":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _checkpoint(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.save_checkpoint(self.state.state_dict(self.cfg))

    # -- the run -------------------------------------------------------------------------------
    def sample_set_event(self) -> SampleSet:
        idx = torch.tensor(self.samples, dtype=torch.long)
        raw = self.data.test_raw[idx]
        return SampleSet(indices=tuple(self.samples),
                         labels=tuple(self.data.test_y[idx.to(self.data.test_y.device)].tolist()),
                         images=encode_images(raw.contiguous().numpy().tobytes()),
                         height=raw.shape[1], width=raw.shape[2])

    def steps(self) -> Iterator[None]:
        """Train the remaining epochs, yielding after every step (epoch ends included).

        ``run()`` drains it; ``vizlab compare`` interleaves several engines' iterators so that
        variants train in lockstep. Raises FloatingPointError when the loss stops being finite.
        """
        p = self.progress
        while p.epoch <= self.cfg.epochs:
            yield from self._train_epoch()
            if self.stopped:
                self._checkpoint()
                return
            self._end_epoch()

    def run(self) -> RunEnded:
        """Train the remaining epochs. Returns the RunEnded event it emitted."""
        t0 = time.monotonic()
        try:
            for _ in self.steps():
                pass
        except FloatingPointError as exc:
            return self.finish("failed", str(exc), time.monotonic() - t0)
        return self.finish("interrupted" if self.stopped else "finished", "",
                           time.monotonic() - t0)

    def finish(self, status: str, message: str = "", wall_time: float = 0.0) -> RunEnded:
        """Emit and return the run's RunEnded event."""
        p = self.progress
        if status == "interrupted" and not message:
            message = f"interrupted at epoch {p.epoch}, step {p.global_step}"
        last = p.history[-1] if p.history else {}
        ended = RunEnded(status=status, epochs_done=len(p.history), step=p.global_step,
                         best_acc=p.best_acc if p.best_acc >= 0 else None,
                         test_acc=last.get("test_acc"), test_loss=last.get("test_loss"),
                         wall_time=wall_time, message=message)
        self.reporter.handle(ended)
        return ended

    def _train_epoch(self) -> Iterator[None]:
        """Train the rest of the current epoch, yielding after each step; stops early on Ctrl-C.

        Time is counted only while this engine runs (not while the caller runs other engines),
        so epoch times stay honest when variants train in lockstep.
        """
        cfg, p, model, opt, sched = self.cfg, self.progress, self.model, self.optimizer, self.scheduler
        shard, forward = self.shard, self.train_forward
        x_all, y_all = self.data.train_x, self.data.train_y
        n, bs = len(y_all), cfg.batch_size
        perm = epoch_permutation(cfg.seed, p.epoch, n).to(self.device)
        losses = torch.zeros(READBACK_STEPS, device=self.device)
        lrs: list[float] = []
        chunk_start = p.global_step + 1
        last_readback = resumed = time.monotonic()
        chunk_seconds = p.epoch_seconds  # this engine's own time when the chunk began
        model.train()
        for i in range(p.step_in_epoch, self.steps_per_epoch):
            idx = perm[i * bs:(i + 1) * bs]
            with self.autocast():
                if shard is None:
                    loss = F.cross_entropy(forward(x_all[idx]), y_all[idx])
                else:
                    loss = shard.batch_loss(x_all, y_all, idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if sched is not None:
                sched.step()
            losses[len(lrs) - 1] = loss.detach()
            p.step_in_epoch, p.global_step = i + 1, p.global_step + 1
            now = time.monotonic()
            if shard is None:
                stopping = self.stop.requested
                due = (len(lrs) == READBACK_STEPS or stopping or i + 1 == self.steps_per_epoch
                       or now - last_readback >= READBACK_SECONDS)
            else:  # processes must agree on when: count steps, never seconds
                stopping, due = False, shard.due(len(lrs), i + 1 == self.steps_per_epoch)
            if due:
                p.epoch_seconds += now - resumed
                resumed = now
                if shard is None:
                    values = losses[:len(lrs)].tolist()  # the one device sync per chunk
                else:  # the global batches' losses, and whether any process was asked to stop
                    values, stopping = shard.gather_steps(losses[:len(lrs)], self.stop.requested,
                                                          now - last_readback)
                self._emit_steps(values, lrs, chunk_start)
                self.threads.observe(len(lrs), p.epoch_seconds - chunk_seconds)
                chunk_start, lrs, last_readback = p.global_step + 1, [], time.monotonic()
                chunk_seconds = p.epoch_seconds
            if stopping:
                self.stopped = True
                return
            p.epoch_seconds += time.monotonic() - resumed
            yield
            resumed = time.monotonic()

    def _emit_steps(self, values: list[float], lrs: list[float], first_step: int) -> None:
        p = self.progress
        self.reporter.handle(TrainSteps(
            epoch=p.epoch, step=first_step, losses=tuple(values), lrs=tuple(lrs),
            epoch_steps=p.step_in_epoch, steps_per_epoch=self.steps_per_epoch,
            elapsed=p.epoch_seconds))
        bad = next((v for v in values if not math.isfinite(v)), None)
        if bad is not None:
            raise FloatingPointError(
                f"train loss became {bad} at step {first_step + values.index(bad)}; "
                "try a lower --lr")
        p.epoch_losses.extend(values)

    def _end_epoch(self) -> None:
        cfg, p, data = self.cfg, self.progress, self.data
        train_time = p.epoch_seconds
        eval_start = time.monotonic()
        evaluate_split = evaluate if self.shard is None else self.shard.evaluate
        with self.autocast():
            test = evaluate_split(self.model, data.test_x, data.test_y, len(data.classes))
            val = evaluate_split(self.model, data.val_x, data.val_y, len(data.classes)) \
                if data.val_x is not None else None
        score = val.acc if val is not None else test.acc
        is_best = score > p.best_acc
        p.best_acc = max(p.best_acc, score)
        epoch_time = train_time + time.monotonic() - eval_start
        losses = p.epoch_losses
        samples_done = min(len(data.train_y), len(losses) * cfg.batch_size)
        end = EpochEnd(
            epoch=p.epoch, step=p.global_step,
            train_loss=sum(losses) / max(len(losses), 1),
            test_loss=test.loss, test_acc=test.acc,
            per_class_acc=tuple(test.per_class_acc),
            confusion=tuple(tuple(row) for row in test.confusion),
            epoch_time=epoch_time, samples_per_s=samples_done / max(train_time, 1e-9),
            lr=self.optimizer.param_groups[0]["lr"], best_acc=p.best_acc, is_best=is_best,
            val_loss=val.loss if val else None, val_acc=val.acc if val else None)
        self.reporter.handle(end)
        self.reporter.handle(self._predictions(test))
        if cfg.histograms:
            self.reporter.handle(self._histograms())
        p.history.append({"epoch": p.epoch, "train_loss": end.train_loss, "test_loss": test.loss,
                          "test_acc": test.acc, "val_acc": end.val_acc, "time": epoch_time})
        p.epoch, p.step_in_epoch, p.epoch_losses, p.epoch_seconds = p.epoch + 1, 0, [], 0.0
        self._checkpoint()

    def _predictions(self, test) -> Predictions:
        data = self.data
        idx = torch.tensor(self.samples, dtype=torch.long, device=test.preds.device)
        wrong = (test.preds != data.test_y).nonzero().flatten()[:MISCLASSIFIED_SHOWN]
        wrong_cpu = wrong.cpu()
        return Predictions(
            epoch=self.progress.epoch,
            preds=tuple(test.preds[idx].tolist()),
            confidences=tuple(round(c, 5) for c in test.confidences[idx].tolist()),
            wrong_indices=tuple(wrong_cpu.tolist()),
            wrong_labels=tuple(data.test_y[wrong].tolist()),
            wrong_preds=tuple(test.preds[wrong].tolist()),
            wrong_images=encode_images(data.test_raw[wrong_cpu].contiguous().numpy().tobytes()))

    @torch.no_grad()
    def _histograms(self, bins: int = 30) -> Histograms:
        layers = {}
        for name, param in self.model.named_parameters():
            entry = {}
            for key, tensor in (("weight", param), ("grad", param.grad)):
                if tensor is None:
                    continue
                t = tensor.detach().float()
                lo, hi = t.min().item(), t.max().item()
                entry[key] = torch.histc(t, bins=bins, min=lo, max=hi).tolist()
                entry[f"{key}_range"] = [lo, hi]
            layers[name] = entry
        return Histograms(epoch=self.progress.epoch, layers=layers)

