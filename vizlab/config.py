"""RunConfig: every setting of one training run, built and validated once at the CLI edge.

Torch-free on purpose: the CLI validates input before paying for the torch import.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from vizlab.errors import VizlabError
from vizlab.event_checks import MAX_IMAGES
from vizlab.models import ACTIVATIONS, MODELS, is_user_model, spec_defaults
from vizlab.names import check_name

OPTIMIZERS = ("sgd", "adam", "adamw", "rprop", "adamax")
SCHEDULES = ("none", "onecycle", "cosine")
DATASETS = ("mnist", "fashion-mnist")
PROGRESS = ("rich", "plain", "off")
AMPS = ("off", "bf16")
DEFAULT_VISDOM_URL = "http://localhost:8097"


def cache_dir() -> str:
    """vizlab's cache: ``$XDG_CACHE_HOME/vizlab``, default ``~/.cache/vizlab``."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "vizlab")


def default_data_dir() -> str:
    return os.environ.get("VIZLAB_DATA_DIR") or os.path.join(cache_dir(), "data")


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
    world_size: int = 1  # processes training together (torch.distributed); batch_size is global
    amp: str = "off"  # bf16: forward passes under torch.autocast (measured, not assumed, faster)
    compile: bool = False  # train through torch.compile(model)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden) if self.hidden is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Any) -> RunConfig:
        """A config read back from a file (config.json, a checkpoint): every field type-checked,
        unknown keys ignored (older or newer vizlab), then validated. ValueError says what is
        wrong, in a few words."""
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            values[f.name] = _typed(f.name, f.type, d[f.name])
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.name not in values]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        try:
            return validate(cls(**values))
        except VizlabError as exc:
            raise ValueError(str(exc)) from None

    def replace(self, **changes: Any) -> RunConfig:
        return validate(dataclasses.replace(self, **changes))


def _typed(name: str, annotation: str, value: Any) -> Any:
    """``value`` if it has the field's type (the annotation's text); else ValueError."""
    optional = annotation.endswith(" | None")
    kind = annotation.removesuffix(" | None")
    if value is None and optional:
        return None
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str) and len(value) <= 4096
    elif kind == "tuple[int, ...]":
        ok = (isinstance(value, (list, tuple)) and len(value) <= 64
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        value = tuple(value) if ok else value
    else:  # a new field type must be taught here
        raise TypeError(f"RunConfig field {name}: no reader for {annotation}")
    if not ok:
        raise ValueError(f"{name} should be {annotation}, not {type(value).__name__} {value!r:.40}")
    return value


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
    _choice("--amp", cfg.amp, AMPS)
    for flag, value in (("--epochs", cfg.epochs), ("--batch-size", cfg.batch_size),
                        ("--samples", cfg.samples), ("--nproc", cfg.world_size)):
        if value <= 0:
            raise VizlabError(f"{flag} must be positive; got {value}")
    if cfg.samples > MAX_IMAGES:  # the run log's readers refuse more images in one event
        raise VizlabError(f"--samples must be at most {MAX_IMAGES}; got {cfg.samples}")
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
    if cfg.name is not None:
        check_name("--name", cfg.name)
    if cfg.env is not None:
        check_name("--env", cfg.env)
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

