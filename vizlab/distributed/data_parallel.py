"""This rank's part of a data-parallel run: what the Engine needs from DistributedDataParallel.

``--batch-size`` stays the global batch. Every rank takes the strided slice
``perm[i*bs:(i+1)*bs][rank::world]`` of each global batch and scales its summed loss by
world / (global batch length): DDP averages the ranks' gradients, so each step's gradient is the
global batch's mean gradient, the one a single process computes (uneven slices included). Losses
are read back at agreed steps in one all-reduce that also carries the ranks' stop votes, and the
test metrics are reduced across ranks, so rank 0 reports exactly what one process would.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from vizlab.run.engine import READBACK_SECONDS, READBACK_STEPS
from vizlab.run.evaluate import Evaluation, forward_split, summarize

FIRST_SYNC_STEPS = 8  # steps before the first agreed read-back; then about READBACK_SECONDS


class Shard:
    """What the Engine needs from DDP: this rank's part of each batch, agreed read-backs, and a
    sharded evaluation that reports what one process would."""

    def __init__(self, rank: int, world_size: int, model, device):
        self.rank, self.world_size = rank, world_size
        ids = [device.index] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(model, device_ids=ids)  # syncs rank 0's weights
        self.every = FIRST_SYNC_STEPS

    def batch_loss(self, x_all, y_all, idx):
        """This rank's summed loss over its strided slice of the global batch ``idx``, scaled so
        that DDP's average over ranks is the gradient of the global batch's mean loss."""
        mine = idx[self.rank::self.world_size]
        logits = self.ddp(x_all[mine])
        return F.cross_entropy(logits, y_all[mine], reduction="sum") * (self.world_size / len(idx))

    def due(self, steps: int, last: bool) -> bool:
        return steps >= self.every or last

    def gather_steps(self, losses, stop_requested: bool, seconds: float,
                     commands_waiting: bool = False):
        """(the global batches' mean losses, whether any rank was asked to stop, whether rank 0
        holds steering commands).

        One all-reduce per chunk carries the losses, the stop votes, rank 0's choice of the
        next chunk's length (about READBACK_SECONDS of steps, so progress stays live) and
        whether rank 0's inbox holds commands (only rank 0 listens for them)."""
        n = len(losses)
        every = waiting = 0.0
        if self.rank == 0:
            per_step = max(seconds / n, 1e-6)
            every = float(max(1, min(READBACK_STEPS, int(READBACK_SECONDS / per_step))))
            waiting = float(commands_waiting)
        extra = torch.tensor([float(stop_requested), every, waiting], device=losses.device)
        total = torch.cat([losses, extra])
        dist.all_reduce(total)
        values = total.tolist()
        self.every = int(values[n + 1])
        return [v / self.world_size for v in values[:n]], values[n] > 0, values[n + 2] > 0

    def agree_commands(self, commands: list, stop_requested: bool) -> tuple[list, bool]:
        """(rank 0's commands, whether any rank was asked to stop), the same on every rank, so
        that all of them pause, stop or change the rate on the same step. While paused, rank 0
        calls this a few times a second, which keeps the collectives' timeout away."""
        box = [commands if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        vote = torch.tensor([float(stop_requested)])
        dist.all_reduce(vote)
        return list(box[0] or []), vote.item() > 0

    def evaluate(self, model, x, y, num_classes: int) -> Evaluation:
        """Each rank evaluates a contiguous chunk; sums and predictions are then combined."""
        n, world = len(x), self.world_size
        per = math.ceil(n / world)
        lo, hi = min(n, self.rank * per), min(n, (self.rank + 1) * per)
        loss_sum, confusion, pred, conf = forward_split(model, x[lo:hi], y[lo:hi], num_classes)
        totals = torch.cat([loss_sum.reshape(1).double(), confusion.flatten().double()])
        dist.all_reduce(totals)
        mine = torch.zeros(2, per, dtype=torch.float64, device=x.device)
        mine[0, :hi - lo], mine[1, :hi - lo] = pred, conf
        parts = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(parts, mine)
        # Chunks are full up to the last non-empty one: all the padding comes after the n values.
        both = torch.cat(parts, dim=1)[:, :n]
        values = totals.tolist()
        matrix = [[round(v) for v in values[1 + r * num_classes:1 + (r + 1) * num_classes]]
                  for r in range(num_classes)]
        return summarize(values[0], matrix, n, both[0].long(), both[1].float())
