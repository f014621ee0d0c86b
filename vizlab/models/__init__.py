"""The model registry: name -> spec (description, builder, training defaults).

This module imports no torch, so the CLI can validate a model name and fill in its defaults
instantly; ``build_model`` imports the builder (and torch) only when a model is really built.
Models are pure ``nn.Module``s taking images (N, 1, 28, 28) and returning logits (N, 10).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from vizlab.errors import VizlabError

__all__ = ["ACTIVATIONS", "ACTIVATION_HELP", "MODELS", "ModelSpec", "build_model", "is_user_model"]

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus", "tanh", "sigmoid",
               "binary", "mish", "hardswish", "prelu")
# binary: seed 001's 0/1 step, trained with a straight-through gradient (models/activations.py).
ACTIVATION_HELP = ("Hidden-layer activation: " + ", ".join(ACTIVATIONS) + ". binary is the 0/1 "
                   "step, trained with a straight-through gradient (1 where |x| <= 1, else 0); "
                   "prelu learns its slope.")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    builder: str  # "module:function"; function(activation=..., hidden=...) -> nn.Module
    seed_note: str
    defaults: dict[str, Any] = field(default_factory=dict)  # RunConfig field -> default
    takes_hidden: bool = False


# Defaults are chosen (and measured in scripts/bench_accuracy.py) so that a plain
# `vizlab run NAME` is fast and accurate on a 2-core CPU; the seeds' own settings are flags away.
_TRAINING = dict(optimizer="adam", lr=2e-3, batch_size=128, epochs=8, schedule="onecycle")
# The CNNs, tuned for time to 99% (scripts/bench_accuracy.py): a short one-cycle at a higher peak
# rate on larger batches reaches 99.1-99.25% in 3 epochs (cnn seeds 0-2, resnet, inception),
# where 8 epochs at 2e-3 reached 99.0% only at epoch 6.
_CNN_TRAINING = dict(_TRAINING, lr=1e-2, batch_size=256, epochs=3)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("mlp-raw", "784-200-200-10 MLP on raw weight tensors (x @ w.t() + b)",
                  "vizlab.models.mlp:build_mlp_raw", "004",
                  dict(_TRAINING, activation="relu")),
        ModelSpec("mlp", "nn.Sequential MLP, 784-200-200-10 by default (--hidden)",
                  "vizlab.models.mlp:build_mlp", "004",
                  dict(_TRAINING, activation="leaky_relu"), takes_hidden=True),
        ModelSpec("cnn", "LeNet-like CNN: two 5x5 convs, max-pool, 320-64-10 head",
                  "vizlab.models.cnn:build_cnn", "002",
                  dict(_CNN_TRAINING, activation="relu")),
        ModelSpec("inception", "GoogLeNet-style CNN with two InceptionA blocks (88 channels)",
                  "vizlab.models.cnn:build_inception", "002",
                  dict(_CNN_TRAINING, activation="relu")),
        ModelSpec("resnet", "CNN with two residual blocks of 3x3 convs",
                  "vizlab.models.cnn:build_resnet", "002",
                  dict(_CNN_TRAINING, activation="relu")),
    )
}

# For a user's own module (path/to/file.py:Class or package.module:Class).
USER_DEFAULTS = dict(_TRAINING, activation="relu")


def is_user_model(name: str) -> bool:
    return ":" in name


def spec_defaults(name: str) -> dict[str, Any]:
    if is_user_model(name):
        return dict(USER_DEFAULTS)
    if name not in MODELS:
        raise VizlabError(f"unknown model {name!r}; choose from {', '.join(MODELS)} "
                          "or give path/to/file.py:ClassName")
    return dict(MODELS[name].defaults)


def build_model(name: str, activation: str | None = None, hidden: tuple[int, ...] | None = None):
    """Build a fresh model on the CPU (the caller moves it to its device)."""
    if is_user_model(name):
        from vizlab.models.user import load_user_model

        return load_user_model(name)
    spec = MODELS.get(name)
    if spec is None:
        spec_defaults(name)  # raises the helpful error
    module_name, func_name = spec.builder.split(":")
    builder = getattr(importlib.import_module(module_name), func_name)
    kwargs: dict[str, Any] = {"activation": activation or spec.defaults["activation"]}
    if spec.takes_hidden and hidden is not None:
        kwargs["hidden"] = hidden
    return builder(**kwargs)
