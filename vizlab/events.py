"""The vocabulary the engine and the sinks share.

The engine emits these; sinks (run log, console, Visdom) consume them. Every event is a frozen
dataclass of plain JSON-able values, so the run log can store it and `replay` can rebuild it:
``event_from_dict(event.to_dict()) == event``. No torch here: the engine converts tensors first.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vizlab.event_checks import check_fields

__all__ = [
    "Control",
    "EpochEnd",
    "Event",
    "Histograms",
    "Predictions",
    "RunEnded",
    "RunStarted",
    "SampleSet",
    "TrainSteps",
    "decode_images",
    "encode_images",
    "event_from_dict",
]


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["event"] = self.kind
        return d


@dataclass(frozen=True)
class RunStarted(Event):
    """A run (or a resumed run) begins. ``config`` is the frozen RunConfig as a dict."""

    kind: ClassVar[str] = "run_started"
    run: str
    run_dir: str
    model: str
    params: int
    device: str
    dataset: str
    classes: tuple[str, ...]
    config: dict
    started: str  # ISO 8601, local time with offset
    epochs: int
    steps_per_epoch: int
    train_samples: int
    test_samples: int
    start_epoch: int = 1  # > 1 when resumed
    start_step: int = 0  # global steps already done when resumed
    resumed: bool = False
    world_size: int = 1


@dataclass(frozen=True)
class SampleSet(Event):
    """The fixed test images whose predictions are shown each epoch (raw 0-255 pixels)."""

    kind: ClassVar[str] = "sample_set"
    indices: tuple[int, ...]
    labels: tuple[int, ...]
    images: str  # encode_images() of a uint8 (n, h, w) array
    height: int = 28
    width: int = 28


@dataclass(frozen=True)
class TrainSteps(Event):
    """Per-step train loss and learning rate for consecutive steps ``step, step+1, ...``.

    Steps are global and 1-based. Losses are read back from the device in chunks, never per step.
    """

    kind: ClassVar[str] = "train_steps"
    epoch: int
    step: int  # global index of losses[0]
    losses: tuple[float, ...]
    lrs: tuple[float, ...]
    epoch_steps: int = 0  # steps done in this epoch after the last entry
    steps_per_epoch: int = 0
    elapsed: float = 0.0  # seconds since the epoch began


@dataclass(frozen=True)
class EpochEnd(Event):
    """Metrics of one finished epoch, evaluated on the whole test split (and validation split)."""

    kind: ClassVar[str] = "epoch_end"
    epoch: int
    step: int  # global step at the end of the epoch
    train_loss: float  # mean over the epoch's steps
    test_loss: float  # mean per sample
    test_acc: float  # percent
    per_class_acc: tuple[float, ...]  # percent, one per class
    confusion: tuple[tuple[int, ...], ...]  # confusion[true][pred]
    epoch_time: float  # seconds, training and evaluation
    samples_per_s: float  # training throughput
    lr: float  # learning rate at the end of the epoch
    best_acc: float  # best accuracy so far (validation when a validation split exists)
    is_best: bool
    val_loss: float | None = None
    val_acc: float | None = None


@dataclass(frozen=True)
class Predictions(Event):
    """Predictions for the SampleSet images, and a few misclassified test images."""

    kind: ClassVar[str] = "predictions"
    epoch: int
    preds: tuple[int, ...]
    confidences: tuple[float, ...]  # softmax probability of the prediction
    wrong_indices: tuple[int, ...] = ()
    wrong_labels: tuple[int, ...] = ()
    wrong_preds: tuple[int, ...] = ()
    wrong_images: str = ""  # encode_images() of uint8 (n, h, w)


@dataclass(frozen=True)
class Histograms(Event):
    """Weight and gradient histograms per parameter tensor (with --viz-histograms).

    ``layers`` maps a parameter name to {"weight": [counts], "grad": [counts],
    "weight_range": [lo, hi], "grad_range": [lo, hi]}.
    """

    kind: ClassVar[str] = "histograms"
    epoch: int
    layers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunEnded(Event):
    kind: ClassVar[str] = "run_ended"
    status: str  # finished | failed | interrupted | stopped (asked to, by a control command)
    epochs_done: int
    step: int
    best_acc: float | None = None
    test_acc: float | None = None
    test_loss: float | None = None
    wall_time: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class Control(Event):
    """A steering command (vizlab.control), accepted or refused at a step boundary.

    ``old`` and ``new`` are what changed: the learning rate for ``lr``, the state (running,
    paused) for ``pause``/``resume``; ``reason`` says why a command was refused.
    """

    kind: ClassVar[str] = "control"
    action: str  # stop | pause | resume | lr | checkpoint | drop | unknown
    accepted: bool
    step: int  # the last step trained before the command acted (it acts from step + 1)
    epoch: int
    source: str = ""  # the door: dashboard | terminal
    origin: str = ""  # who and where from
    command: str = ""  # as given, e.g. "lr x0.5"
    old: str | float | None = None
    new: str | float | None = None
    lr_factor: float = 1.0  # the rate's factor on the configured schedule, after the command
    lr_fixed: bool = False  # after the command the rate is fixed (the schedule no longer applies)
    reason: str = ""
    request: str = ""  # the id a waiting `vizlab control` recognises its answer by
    variant: str = ""  # in a comparison: the variant it was for


_KINDS = {cls.kind: cls for cls in (RunStarted, SampleSet, TrainSteps, EpochEnd, Predictions,
                                    Histograms, RunEnded, Control)}


def event_from_dict(d: dict[str, Any]) -> Event:
    """Rebuild an event from ``to_dict()`` output (or a run-log line). Unknown keys are ignored.

    A run-log line is untrusted input: every field is type-checked and every size bounded (see
    vizlab.event_checks) before anything is built; ValueError with a short reason otherwise.
    """
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    kind = d.get("event")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        shown = kind[:40] if isinstance(kind, str) else kind
        raise ValueError(f"unknown event kind {shown!r}" if kind is not None else "no event kind")
    try:
        return cls(**check_fields(cls, d))
    except ValueError as exc:
        raise ValueError(f"{kind}: {exc}") from None


def encode_images(data: bytes) -> str:
    """Raw uint8 pixel bytes to text for JSON."""
    return base64.b64encode(data).decode("ascii")


def decode_images(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))
