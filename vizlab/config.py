"""RunConfig: every setting of one training run, built and validated once at the CLI edge.

Torch-free on purpose: the CLI validates input before paying for the torch import.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from vizlab.errors import VizlabError
from vizlab.models import ACTIVATIONS, MODELS, is_user_model, spec_defaults

OPTIMIZERS = ("sgd", "adam", "adamw", "rprop", "adamax")
SCHEDULES = ("none", "onecycle", "cosine")
DATASETS = ("mnist", "fashion-mnist")
PROGRESS = ("rich", "plain", "off")
DEFAULT_VISDOM_URL = "http://localhost:8097"


def default_data_dir() -> str:
    env = os.environ.get("VIZLAB_DATA_DIR")
    if env:
        return env
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "vizlab", "data")


def default_visdom_url() -> str:
    return os.environ.get("VIZLAB_VISDOM_URL") or DEFAULT_VISDOM_URL


@dataclass(frozen=True)
class RunConfig:
    model: str
    activation: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    schedule: str
    hidden: tuple[int, ...] | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    dataset: str = "mnist"
    data_dir: str = ""
    limit_train: int | None = None
    limit_test: int | None = None
    val_split: int = 0
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    runs_dir: str = "runs"
    name: str | None = None
    resume: str | None = None
    progress: str = "rich"
    samples: int = 32
    visdom: bool = True
    visdom_url: str = DEFAULT_VISDOM_URL
    visdom_url_given: bool = False  # an explicit URL never auto-starts a server
    env: str | None = None
    histograms: bool = False
    server: bool = True  # auto-start a local server for the default URL
    control: bool = True  # take steering commands (dashboard pane, `vizlab control`)
    world_size: int = 1  # processes training together (torch.distributed); batch_size is global

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden) if self.hidden is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if d.get("hidden") is not None:
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)

    def replace(self, **changes: Any) -> RunConfig:
        return validate(dataclasses.replace(self, **changes))


def parse_hidden(text: str | None) -> tuple[int, ...] | None:
    """'512-256-128' -> (512, 256, 128). Dashes, because commas mean comparison axes."""
    if text is None or text == "":
        return None
    try:
        widths = tuple(int(part) for part in str(text).split("-"))
    except ValueError:
        raise VizlabError(f"--hidden must be widths joined by dashes, like 512-256; got {text!r}") from None
    if any(w <= 0 for w in widths):
        raise VizlabError(f"--hidden widths must be positive; got {text!r}")
    return widths


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise VizlabError(f"unknown {flag} {value!r}; choose from {', '.join(choices)}")


def validate(cfg: RunConfig) -> RunConfig:
    """Raise VizlabError (one line, exit 2) for any bad value; return cfg unchanged."""
    if not is_user_model(cfg.model) and cfg.model not in MODELS:
        spec_defaults(cfg.model)  # raises the helpful "unknown model" line
    _choice("--activation", cfg.activation, ACTIVATIONS)
    _choice("--optimizer", cfg.optimizer, OPTIMIZERS)
    _choice("--schedule", cfg.schedule, SCHEDULES)
    _choice("--dataset", cfg.dataset, DATASETS)
    _choice("--progress", cfg.progress, PROGRESS)
    for flag, value in (("--epochs", cfg.epochs), ("--batch-size", cfg.batch_size),
                        ("--samples", cfg.samples), ("--nproc", cfg.world_size)):
        if value <= 0:
            raise VizlabError(f"{flag} must be positive; got {value}")
    if not cfg.lr > 0:
        raise VizlabError(f"--lr must be positive; got {cfg.lr}")
    if cfg.momentum < 0 or cfg.weight_decay < 0:
        raise VizlabError("--momentum and --weight-decay must not be negative")
    for flag, value in (("--limit-train", cfg.limit_train), ("--limit-test", cfg.limit_test),
                        ("--threads", cfg.threads)):
        if value is not None and value <= 0:
            raise VizlabError(f"{flag} must be positive; got {value}")
    if cfg.val_split < 0:
        raise VizlabError(f"--val-split must not be negative; got {cfg.val_split}")
    if cfg.hidden is not None and not is_user_model(cfg.model) and not MODELS[cfg.model].takes_hidden:
        raise VizlabError(f"--hidden applies to mlp only, not {cfg.model}")
    dev = cfg.device
    if not (dev in ("auto", "cpu", "cuda", "mps") or
            (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise VizlabError(f"unknown --device {dev!r}; choose from auto, cpu, cuda, cuda:N, mps")
    return cfg


def build_config(model: str, **options: Any) -> RunConfig:
    """Fill the model's defaults for options left as None, then validate."""
    values = spec_defaults(model)
    values.update({k: v for k, v in options.items() if v is not None})
    if isinstance(values.get("hidden"), str):
        values["hidden"] = parse_hidden(values["hidden"])
    values["data_dir"] = values.get("data_dir") or default_data_dir()
    return validate(RunConfig(model=model, **values))

