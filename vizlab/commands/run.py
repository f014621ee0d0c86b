"""`vizlab run MODEL`: train one model."""

from __future__ import annotations

import os
import sys

import click

from vizlab.commands.options import training_options

# What may change when a run is resumed; everything else (model, data, optimizer...) is the run's.
RESUMABLE = {"epochs", "device", "threads", "progress", "visdom", "visdom_url",
             "visdom_url_given", "server", "histograms", "env", "data_dir", "amp", "compile",
             "control"}


@click.command()
@click.argument("model", required=False)
@training_options
@click.option("--resume", metavar="RUN_DIR",
              help="Continue RUN_DIR from its last checkpoint, with its own settings. A larger "
                   "--epochs extends it: the learning-rate schedule is then re-planned as if the "
                   "run had started with the new --epochs (the rate at step k is that schedule's "
                   "rate at step k).")
@click.option("--trust-model-file", is_flag=True, default=False,
              help="With --resume: import the model file the run's config names without naming "
                   "it again.")
@click.option("--nproc", type=int, metavar="N",
              help="Train in N processes (torch.distributed DDP; --batch-size stays the global "
                   "batch). On several nodes, use torchrun ... -m vizlab run instead.")
@click.pass_context
def run(ctx, model, resume, nproc, **options):
    """Train MODEL (mlp-raw, mlp, cnn, inception, resnet, or path/file.py:Class).

    \b
      vizlab run mlp
      vizlab run cnn --epochs 3 --device cuda
      vizlab run mlp --hidden 512-256-128-64 --activation selu
      vizlab run --resume runs/mlp-mnist-20261123-101500 --epochs 20
      vizlab run cnn --nproc 2          (torchrun ... -m vizlab run cnn works too)
    """
    from vizlab.distributed.group import Group, worker
    from vizlab.run.training import train

    if nproc is not None:
        from vizlab.distributed.launcher import check_nproc

        check_nproc(nproc)
    group = Group.from_env()  # set when torchrun (or --nproc) started this process as one rank
    if group is None:
        cfg = make_config(ctx, model, resume, options)
        if nproc is not None and nproc > 1:
            launch(ctx, cfg, nproc)
        else:
            finish(*train(cfg))
        return
    with worker(group):
        with group.agreement():
            cfg = make_config(ctx, model, resume, options, group)
        finish(*train(cfg, group), group)


def make_config(ctx, model, resume, options, group=None):
    """The run's RunConfig; a resumed run's comes from rank 0's run dir."""
    from vizlab.config import build_config
    from vizlab.errors import VizlabError

    given = {name for name in options
             if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT}
    if resume:
        fields = edge_options(options, given)
        trust = options.get("trust_model_file", False)

        def load():
            return resume_config(resume, model, fields, trust)
        return group.from_rank0(load) if group else load()
    if not model:
        raise VizlabError("give a MODEL to train (see `vizlab models`) or --resume RUN_DIR")
    return build_config(model, **edge_options(options, set(options)))


def resume_config(run_dir: str, model: str | None, fields: dict, trust_model_file: bool):
    """The saved config of a run with the options that may change (RESUMABLE) on top. An option
    that would change anything else (model, optimizer, lr, data...) is refused with one line, as
    is a model file the user did not name again: a run dir from someone else never imports code."""
    from vizlab.errors import VizlabError
    from vizlab.models import is_user_model
    from vizlab.run.rundir import RunDir

    rd = RunDir.open(run_dir)
    saved = rd.read_config()
    fixed = {k: v for k, v in fields.items() if k not in RESUMABLE}
    if model is not None:
        fixed["model"] = model
    changed = sorted(k for k, v in fixed.items() if _differs(getattr(saved, k, None), v))
    if changed:
        flags = ", ".join("MODEL" if k == "model" else "--" + k.replace("_", "-") for k in changed)
        raise VizlabError(f"--resume continues {run_dir} with its own settings; {flags} cannot "
                          "change (start a new run for other settings)")
    if is_user_model(saved.model) and model != saved.model and not trust_model_file:
        raise VizlabError(f"{run_dir} trains the model file {saved.model}; name it again to run "
                          f"its code (vizlab run {saved.model} --resume {run_dir}) or pass "
                          "--trust-model-file")
    overrides = {k: v for k, v in fields.items() if k in RESUMABLE}
    return saved.replace(**overrides, resume=str(rd.path), runs_dir=str(rd.path.parent),
                         name=rd.name)


def _differs(saved, given) -> bool:
    if isinstance(saved, tuple):
        from vizlab.config import parse_hidden

        given = parse_hidden(given) if isinstance(given, str) else given
    if isinstance(saved, float) and isinstance(given, (int, float)):
        return float(given) != saved
    return saved != given


def finish(ended, run_dir, group=None):
    """Exit as the run ended (every rank alike; rank 0 alone says so)."""
    from vizlab.distributed.group import SharedError, launched_by_vizlab
    from vizlab.errors import VizlabError

    if group is not None:
        group.barrier()  # no rank exits before rank 0 has closed its run log
    if ended.status == "interrupted":
        if group is None or group.is_main:
            again = f" --nproc {group.world_size}" if group and launched_by_vizlab() else ""
            click.echo(f"vizlab: interrupted; checkpoint saved, continue with "
                       f"`vizlab run --resume {run_dir}{again}`", err=True)
        sys.exit(130)
    if ended.status == "failed":
        raise (SharedError if group else VizlabError)(ended.message)


def launch(ctx, cfg, nproc):
    """Check the input here, then train in nproc processes; exit as the worst of them did."""
    from vizlab.distributed.launcher import launch as start_ranks
    from vizlab.distributed.launcher import precheck, worker_argv

    precheck(cfg, nproc)
    exit_as(start_ranks(worker_argv(ctx), nproc))


def exit_as(outcome):
    """End the launcher as its ranks ended (vizlab.distributed.launcher.Outcome): one line."""
    from vizlab.errors import VizlabError

    if outcome.traceback:
        click.echo(outcome.traceback.rstrip(), err=True)
    if outcome.status == 2:
        raise VizlabError(outcome.message)
    if outcome.message:
        click.echo(f"vizlab: error: {outcome.message}", err=True)
    if outcome.status:
        sys.exit(outcome.status)


def edge_options(options: dict, given: set) -> dict:
    """CLI flags -> RunConfig fields, for the flags in `given` (None means the model's default)."""
    from vizlab.config import default_visdom_url
    from vizlab.report.console import choose_mode

    out = {k: v for k, v in options.items() if k in given and k not in
           ("no_visdom", "no_server", "no_control", "viz_histograms", "progress", "visdom_url",
            "trust_model_file")}
    if "no_visdom" in given:
        out["visdom"] = not options["no_visdom"]
    if "no_server" in given:
        out["server"] = not options["no_server"]
    if "no_control" in given:
        out["control"] = not options["no_control"]
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
