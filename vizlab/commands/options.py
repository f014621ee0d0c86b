"""The training options shared by `vizlab run` and `vizlab compare`.

Every option defaults to None so the model's own defaults (vizlab.models) fill what the user left out,
and so `--resume` can tell which options were given. Choices are validated by vizlab.config, which
gives the same one-line errors everywhere.
"""

from __future__ import annotations

import click

from vizlab.config import DATASETS, OPTIMIZERS, PROGRESS, SCHEDULES
from vizlab.models import ACTIVATION_HELP


def _options(lists: bool):
    """With ``lists``, the options that may be comparison axes take comma-separated text."""
    o = click.option
    num, whole = (str, str) if lists else (float, int)  # text: vizlab.compare.variants reads it
    return [
        o("--dataset", help=f"{' | '.join(DATASETS)} (default mnist)"),
        o("--data-dir", help="Where datasets live (default ~/.cache/vizlab/data, env VIZLAB_DATA_DIR)."),
        o("--limit-train", type=whole, help="Train on the first N samples only."),
        o("--limit-test", type=whole, help="Evaluate on the first N test samples only."),
        o("--val-split", type=whole, help="Hold out N training samples for validation."),
        o("--activation", help=ACTIVATION_HELP),
        o("--hidden", help="MLP hidden widths joined by dashes, e.g. 512-256-128-64."),
        o("--optimizer", help=f"{' | '.join(OPTIMIZERS)}"),
        o("--lr", type=num, help="Learning rate (the peak rate with --schedule onecycle)."),
        o("--momentum", type=num, help="SGD momentum (default 0.9; the seeds use 0)."),
        o("--weight-decay", type=num, help="Weight decay (default 0)."),
        o("--batch-size", type=whole, help="Samples per step."),
        o("--epochs", type=whole, help="Passes over the training data."),
        o("--seed", type=whole, help="Seed for weights and data order (default 0)."),
        o("--schedule", help=f"Learning-rate schedule: {' | '.join(SCHEDULES)}."),
        o("--threads", type=whole, help="Torch CPU threads."),
        o("--device", help="auto | cpu | cuda | cuda:N | mps (default auto)."),
        o("--amp", help="off | bf16: mixed precision (autocast) for forward passes (default off)."),
        o("--compile", is_flag=True, default=None,
          help="Train through torch.compile (compiles on the first steps; measure before use)."),
        o("--runs-dir", help="Where run dirs go (default ./runs)."),
        o("--name", help="Run name (default MODEL-DATASET-DATE-TIME)."),
        o("--progress", help=f"{' | '.join(PROGRESS)} (default rich on a terminal, else plain)."),
        o("--samples", type=whole,
          help="Test images shown with predictions (default 32, at most 1024)."),
        o("--visdom-url", help="Visdom server (default http://localhost:8097, env VIZLAB_VISDOM_URL)."),
        o("--no-visdom", is_flag=True, default=False, help="Do not stream to Visdom."),
        o("--no-server", is_flag=True, default=False,
          help="Do not start a local Visdom server when none answers."),
        o("--env", help="Visdom env (default: the run name)."),
        o("--viz-histograms", is_flag=True, default=False,
          help="Weight and gradient histograms per layer each epoch."),
        o("--no-control", is_flag=True, default=False,
          help="Take no steering commands (the dashboard's control pane, `vizlab control`)."),
    ]


def training_options(func):
    for option in reversed(_options(lists=False)):
        func = option(func)
    return func


def comparison_options(func):
    """The training options, where --lr, --batch-size etc. may list several values."""
    for option in reversed(_options(lists=True)):
        func = option(func)
    return func
