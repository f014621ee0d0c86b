"""Whole-split evaluation: loss, accuracy, confusion matrix and per-sample predictions.

Everything stays on the device until one read-back at the end. ``forward_split`` and ``summarize``
are the two halves of ``evaluate``, so a sharded evaluation (vizlab.distributed.group) can reduce the
device totals across processes in between and report exactly what one process would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Evaluation:
    loss: float  # mean per sample
    acc: float  # percent
    confusion: list[list[int]]  # [true][pred]
    per_class_acc: list[float]  # percent; 0 for a class absent from the split
    preds: torch.Tensor  # int64 (N,) on the device
    confidences: torch.Tensor  # float (N,) on the device


@torch.no_grad()
def forward_split(model, x: torch.Tensor, y: torch.Tensor, num_classes: int = 10,
                  chunk: int = 2000):
    """(summed loss, confusion counts (C, C), predictions, confidences), all on the device."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    preds = [torch.zeros(0, dtype=torch.long, device=x.device)]  # an empty shard is fine
    confs = [torch.zeros(0, device=x.device)]
    for start in range(0, len(x), chunk):
        logits = model(x[start:start + chunk]).float()
        loss_sum += F.cross_entropy(logits, y[start:start + chunk], reduction="sum")
        conf, pred = logits.softmax(dim=1).max(dim=1)
        preds.append(pred)
        confs.append(conf)
    model.train(was_training)
    pred = torch.cat(preds)
    confusion = torch.bincount(y * num_classes + pred, minlength=num_classes * num_classes)
    return loss_sum, confusion.reshape(num_classes, num_classes), pred, torch.cat(confs)


def summarize(loss_total: float, matrix: list[list[int]], n: int, preds: torch.Tensor,
              confidences: torch.Tensor) -> Evaluation:
    """The reported numbers from a split's totals (n samples)."""
    n = max(n, 1)
    correct = sum(matrix[i][i] for i in range(len(matrix)))
    per_class = [100.0 * row[i] / sum(row) if sum(row) else 0.0 for i, row in enumerate(matrix)]
    return Evaluation(loss_total / n, 100.0 * correct / n, matrix, per_class, preds, confidences)


def evaluate(model, x: torch.Tensor, y: torch.Tensor, num_classes: int = 10,
             chunk: int = 2000) -> Evaluation:
    loss_sum, confusion, pred, conf = forward_split(model, x, y, num_classes, chunk)
    # One read-back for every number this evaluation reports.
    return summarize(loss_sum.item(), confusion.tolist(), len(x), pred, conf)
