"""`vizlab compare MODEL[,MODEL...]`: variants side by side on one dashboard."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from vizlab.commands.options import comparison_options
from vizlab.errors import VizlabError


@click.command()
@click.argument("models", nargs=-1, required=True, metavar="MODEL[,MODEL...] | RUN...")
@comparison_options
@click.option("--repeats", type=int, default=1, show_default=True,
              help="Run every variant with N seeds; rank by the mean.")
@click.option("--sequential", is_flag=True, default=False,
              help="Train variants one after another instead of in lockstep.")
@click.option("--max-variants", type=int, default=32, show_default=True,
              help="Refuse grids larger than this.")
@click.option("--target", type=float, default=None, metavar="ACC",
              help="Test accuracy in percent; the ranking gives the steps, epochs and seconds "
                   "each variant needed to first reach it (default 97 for mnist, 85 for "
                   "fashion-mnist).")
@click.option("--stale-after", type=float, default=120.0, show_default=True, metavar="SECONDS",
              help="Existing runs: stop following a run whose log has no end and has not grown "
                   "for this long (killed, or paused).")
@click.option("--nproc", type=int, metavar="N",
              help="Deal the runs over N processes on this machine (torch.distributed), each "
                   "training its share in lockstep. On several nodes, use torchrun ... -m "
                   "vizlab compare instead.")
@click.pass_context
def compare(ctx, models, repeats, sequential, max_variants, target, stale_after, nproc,
            **options):
    """Train variants of MODEL side by side: every option given several comma-separated values
    is an axis, and several axes give their grid. Or compare runs that exist (RUN: run dirs or
    comparison dirs, as paths or names in --runs-dir): no training; runs still in progress are
    followed until they end.

    \b
      vizlab compare mlp --activation relu,leaky_relu,selu,tanh
      vizlab compare mlp --optimizer sgd,rprop,adamax --lr 0.01 --schedule none
      vizlab compare mlp,cnn --epochs 3 --repeats 3
      vizlab compare runs/mlp-relu runs/mlp-tanh      # existing runs
      vizlab compare cnn --lr 0.01,0.003,0.001 --repeats 3 --nproc 2
    """
    from vizlab.compare.existing import names_runs
    from vizlab.compare.target import check_target
    from vizlab.distributed.group import Group

    check_target(target)
    if names_runs(models, Path(options.get("runs_dir") or "runs")):
        from vizlab.commands.compare_existing import check_options, compare_existing

        if nproc is not None or Group.from_env() is not None:
            raise VizlabError("comparing existing runs trains nothing: run it in one process "
                              "(without --nproc or torchrun)")
        check_options(options, repeats, sequential)
        return compare_existing(models, options, target, stale_after)
    if len(models) > 1:
        raise VizlabError("give models as one comma-separated argument (mlp,cnn)")
    if nproc is not None:
        from vizlab.distributed.launcher import check_nproc

        check_nproc(nproc)
    group = Group.from_env()  # set when torchrun (or --nproc) started this process as one rank
    if group is not None or (nproc or 1) > 1:
        from vizlab.commands.compare_ranks import compare_in_processes

        return compare_in_processes(ctx, group, nproc, sequential, target, lambda: _variants(
            models[0], options, repeats, max_variants))
    from vizlab.compare.comparison import Comparison
    from vizlab.control import Inbox
    from vizlab.report.compare_console import CompareConsole
    from vizlab.run.control_files import watching
    from vizlab.run.engine import StopFlag
    from vizlab.run.training import sigint_requests_stop

    variants = _variants(models[0], options, repeats, max_variants)
    first = variants[0].cfg
    name = comparison_name(variants)
    inbox = Inbox() if first.control else None  # drop VARIANT, from the pane or `vizlab control`
    comparison = Comparison(variants, first.runs_dir, name, sequential=sequential,
                            env=first.env, target=target, inbox=inbox)
    labels = {v.slug: (v.name if repeats == 1 else f"{v.name} (seed {v.cfg.seed})")
              for v in variants}
    stop = StopFlag()
    screen = CompareConsole(list(labels.values()), first.epochs, first.progress)
    comparison.prepare()  # every variant checked before anything is written
    board = _dashboard(first, comparison, variants, inbox) if first.visdom else None

    def forward(entry, event):
        if entry is None:  # the comparison's answer to a command no run could take
            screen.handle(None, event)
            if board is not None:
                board.handle_comparison(event)
            return
        screen.handle(labels[entry.variant.slug], event)
        if board is not None:
            board.handle_variant(entry.variant.name, entry.variant.cfg.seed, event)

    try:
        try:
            comparison.open(forward, stop)
        except BaseException:
            if board is not None:
                board.finish([], "failed")
            raise
        screen.console.print(f"comparing {len(variants)} runs "
                             f"({'one after another' if sequential else 'in lockstep'}) -> "
                             f"{comparison.dir}", markup=False)
        screen.start()
        try:
            with sigint_requests_stop(stop), watching(comparison.dir, inbox):
                comparison.run()
        finally:
            screen.close()
            rows = comparison.results()
            comparison.write_summary(rows)
            if board is not None:
                board.finish(rows, comparison.status)
    finally:
        comparison.release()
    screen.ranking(rows, comparison.target)
    if comparison.status == "interrupted":
        click.echo(f"vizlab: interrupted; every variant is checkpointed in {comparison.dir} "
                   "(continue one with `vizlab run --resume DIR`)", err=True)
        sys.exit(130)


def _variants(models, options, repeats, max_variants):
    """The comparison's runs from the command line (every value checked)."""
    from vizlab.commands.run import edge_options
    from vizlab.compare.variants import expand, parse_axes

    fields = edge_options(options, set(options))
    axes, shared = parse_axes({**fields, "model": models})
    return expand(axes, shared, repeats, max_variants)


def comparison_name(variants) -> str:
    """--name, or one made of the axes and the time."""
    axes = "-".join(variants[0].axes)
    return variants[0].cfg.name or f"compare-{axes}-{datetime.now():%Y%m%d-%H%M%S}"


def _dashboard(cfg, comparison, variants, inbox=None):
    """The comparison's live dashboard; its control pane's commands go into ``inbox``."""
    from vizlab.report.compare_board import CompareBoard, board_for
    from vizlab.run.training import open_dashboard

    url = open_dashboard(cfg, comparison.env)
    board = board_for(variants, comparison.dir.name, comparison.target, comparison.env,
                      steering=cfg.control)
    return CompareBoard(url, comparison.env, board, inbox)
