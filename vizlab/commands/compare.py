"""`vizlab compare MODEL[,MODEL...]`: variants side by side on one dashboard."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from vizlab.commands.options import comparison_options


@click.command()
@click.argument("models")
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
def compare(models, repeats, sequential, max_variants, target, **options):
    """Train variants of MODEL side by side: every option given several comma-separated values
    is an axis, and several axes give their grid.

    \b
      vizlab compare mlp --activation relu,leaky_relu,selu,tanh
      vizlab compare mlp --optimizer sgd,rprop,adamax --lr 0.01 --schedule none
      vizlab compare mlp,cnn --epochs 3 --repeats 3
    """
    from vizlab.commands.run import edge_options
    from vizlab.compare.comparison import Comparison
    from vizlab.compare.target import check_target
    from vizlab.compare.variants import expand, parse_axes
    from vizlab.report.compare_console import CompareConsole
    from vizlab.run.engine import StopFlag
    from vizlab.run.training import sigint_requests_stop

    check_target(target)
    fields = edge_options(options, set(options))
    axes, shared = parse_axes({**fields, "model": models})
    variants = expand(axes, shared, repeats, max_variants)
    first = variants[0].cfg
    name = first.name or f"compare-{'-'.join(axes)}-{datetime.now():%Y%m%d-%H%M%S}"
    comparison = Comparison(variants, Path(first.runs_dir) / name, sequential=sequential,
                            env=first.env, target=target)
    labels = {v.slug: (v.name if repeats == 1 else f"{v.name} (seed {v.cfg.seed})")
              for v in variants}
    screen = CompareConsole(list(labels.values()), first.epochs, first.progress)
    board = _dashboard(first, comparison, variants) if first.visdom else None

    def forward(entry, event):
        screen.handle(labels[entry.variant.slug], event)
        if board is not None:
            board.handle_variant(entry.variant.name, entry.variant.cfg.seed, event)

    stop = StopFlag()
    comparison.prepare(forward, stop)
    screen.console.print(f"comparing {len(variants)} runs "
                         f"({'one after another' if sequential else 'in lockstep'}) -> "
                         f"{comparison.dir}", markup=False)
    screen.start()
    try:
        with sigint_requests_stop(stop):
            comparison.run()
    finally:
        screen.close()
        rows = comparison.results()
        comparison.write_summary(rows)
        if board is not None:
            board.finish(rows, "interrupted" if stop.requested else "finished")
    screen.ranking(rows, comparison.target)
    if stop.requested:
        click.echo(f"vizlab: interrupted; partial results in {comparison.dir}", err=True)
        sys.exit(130)


def _dashboard(cfg, comparison, variants):
    from vizlab.report.compare_board import CompareBoard
    from vizlab.run.training import open_dashboard

    url = open_dashboard(cfg, comparison.env)
    return CompareBoard(url, comparison.env, variants, comparison.dir, comparison.target)
