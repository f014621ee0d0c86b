"""Synthetic but realistic event streams and run directories, for the report tests."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from vizlab.events import (
    EpochEnd,
    Event,
    Histograms,
    Predictions,
    RunEnded,
    RunStarted,
    SampleSet,
    TrainSteps,
    encode_images,
)
from vizlab.report.runlog import RunLogSink

DIGITS = tuple(str(i) for i in range(10))


def _images(rng: random.Random, n: int, side: int = 28) -> str:
    return encode_images(bytes(rng.randrange(256) for _ in range(n * side * side)))


def run_events(name: str = "run", *, epochs: int = 3, steps_per_epoch: int = 120, chunk: int = 25,
               classes: Sequence[str] = DIGITS, samples: int = 16, seed: int = 0,
               histograms: bool = False, start_epoch: int = 1, status: str = "finished",
               val: bool = False, model: str = "mlp") -> list[Event]:
    """A run as the engine would report it: start, samples, step chunks, epochs, end."""
    rng = random.Random(seed)
    k = len(classes)
    start_step = (start_epoch - 1) * steps_per_epoch
    config = {"model": model, "lr": 0.002, "batch_size": 128, "epochs": epochs, "name": name,
              "dataset": "mnist", "note": "<script>alert(1)</script>"}
    events: list[Event] = [RunStarted(
        run=name, run_dir=f"runs/{name}", model=model, params=199_210, device="cpu",
        dataset="mnist", classes=tuple(classes), config=config,
        started="2024-05-01T12:00:00+02:00", epochs=epochs, steps_per_epoch=steps_per_epoch,
        train_samples=60000, test_samples=10000, start_epoch=start_epoch, start_step=start_step,
        resumed=start_epoch > 1)]
    labels = tuple(rng.randrange(k) for _ in range(samples))
    events.append(SampleSet(indices=tuple(range(0, samples * 7, 7)), labels=labels,
                            images=_images(rng, samples)))
    step, best = start_step, 0.0
    for epoch in range(start_epoch, epochs + 1):
        done = 0
        while done < steps_per_epoch:
            n = min(chunk, steps_per_epoch - done)
            losses = tuple(2.3 * math.exp(-(step + i) / 150) + 0.05 + rng.random() * 0.1
                           for i in range(1, n + 1))
            lrs = tuple(0.002 * (1 - (step + i) / (epochs * steps_per_epoch + 1))
                        for i in range(1, n + 1))
            events.append(TrainSteps(epoch=epoch, step=step + 1, losses=losses, lrs=lrs,
                                     epoch_steps=done + n, steps_per_epoch=steps_per_epoch,
                                     elapsed=0.01 * (done + n)))
            step, done = step + n, done + n
        acc = 90 + epoch + rng.random()
        best = max(best, acc)
        confusion = tuple(tuple(900 + epoch if i == j else rng.randrange(5) for j in range(k))
                          for i in range(k))
        events.append(EpochEnd(
            epoch=epoch, step=step, train_loss=0.3 / epoch, test_loss=0.25 / epoch, test_acc=acc,
            per_class_acc=tuple(85 + rng.random() * 15 for _ in range(k)), confusion=confusion,
            epoch_time=1.5, samples_per_s=40000.0, lr=0.001, best_acc=best, is_best=acc >= best,
            val_loss=0.2 / epoch if val else None, val_acc=acc - 1 if val else None))
        preds = tuple(lab if rng.random() < 0.8 else (lab + 1) % k for lab in labels)
        events.append(Predictions(
            epoch=epoch, preds=preds, confidences=tuple(0.5 + rng.random() / 2 for _ in preds),
            wrong_indices=(3, 9, 11), wrong_labels=(1, 2, 3), wrong_preds=(7, 5, 8),
            wrong_images=_images(rng, 3)))
        if histograms:
            layers = {f"layer{i}.weight": {"weight": [rng.randrange(50) for _ in range(30)],
                                           "grad": [rng.randrange(50) for _ in range(30)],
                                           "weight_range": [-0.2, 0.2],
                                           "grad_range": [-0.01, 0.01]} for i in range(3)}
            events.append(Histograms(epoch=epoch, layers=layers))
    if status:
        events.append(RunEnded(status=status, epochs_done=epochs, step=step, best_acc=best,
                               test_acc=acc, test_loss=0.25 / epochs, wall_time=12.5))
    return events


def open_run_log(run_dir: Path, config: dict | None = None,
                 flush_every: float = 2.0) -> RunLogSink:
    """The real run-log sink on ``run_dir`` (created), with ``config`` as its config.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (run_dir / "config.json").write_text(json.dumps(config))
    return RunLogSink(run_dir, flush_every=flush_every)


def write_run(run_dir: Path, events: Iterable[Event], config: dict | None = None) -> Path:
    """A run directory whose log the run-log sink wrote from ``events``; its events.jsonl path."""
    log = open_run_log(run_dir, config)
    for event in events:
        log.handle(event)
    log.close()
    return log.path
