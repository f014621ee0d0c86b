"""`vizlab run MODEL`: train one model."""

from __future__ import annotations

import os
import sys

import click

from vizlab.commands.options import training_options

# What may change when a run is resumed; everything else (model, data, optimizer...) is the run's.
RESUMABLE = {"epochs", "device", "threads", "progress", "visdom", "visdom_url",
             "visdom_url_given", "server", "histograms", "env"}


@click.command()
@click.argument("model", required=False)
@training_options
@click.option("--resume", metavar="RUN_DIR",
              help="Continue RUN_DIR from its last checkpoint (--epochs given now extends it).")
@click.pass_context
def run(ctx, model, resume, **options):
    """Train MODEL (mlp-raw, mlp, cnn, inception, resnet, or path/file.py:Class).

    \b
      vizlab run mlp
      vizlab run cnn --epochs 3 --device cuda
      vizlab run mlp --hidden 512-256-128-64 --activation selu
      vizlab run --resume runs/mlp-mnist-20261123-101500 --epochs 20
    """
    from vizlab.config import build_config
    from vizlab.errors import VizlabError
    from vizlab.runner import load_resume_config, train

    given = {name for name in options
             if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT}
    if resume:
        fields = edge_options(options, given)
        cfg = load_resume_config(resume, {k: v for k, v in fields.items() if k in RESUMABLE})
    elif not model:
        raise VizlabError("give a MODEL to train (see `vizlab models`) or --resume RUN_DIR")
    else:
        cfg = build_config(model, **edge_options(options, set(options)))
    ended, run_dir = train(cfg)
    if ended.status == "interrupted":
        click.echo(f"vizlab: interrupted; checkpoint saved, continue with "
                   f"`vizlab run --resume {run_dir}`", err=True)
        sys.exit(130)
    if ended.status == "failed":
        raise VizlabError(ended.message)


def edge_options(options: dict, given: set) -> dict:
    """CLI flags -> RunConfig fields, for the flags in `given` (None means the model's default)."""
    from vizlab.config import default_visdom_url
    from vizlab.report.console import choose_mode

    out = {k: v for k, v in options.items() if k in given and k not in
           ("no_visdom", "no_server", "viz_histograms", "progress", "visdom_url")}
    if "no_visdom" in given:
        out["visdom"] = not options["no_visdom"]
    if "no_server" in given:
        out["server"] = not options["no_server"]
    if "viz_histograms" in given:
        out["histograms"] = options["viz_histograms"]
    if "progress" in given:
        out["progress"] = choose_mode(options["progress"])
    if "visdom_url" in given:
        # A URL the user chose (flag or environment) is used as is: it never auto-starts a server.
        explicit = options["visdom_url"] or os.environ.get("VIZLAB_VISDOM_URL")
        out["visdom_url"] = explicit or default_visdom_url()
        out["visdom_url_given"] = bool(explicit)
    return out
