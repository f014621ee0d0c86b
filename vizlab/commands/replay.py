"""`vizlab replay RUN_DIR`: redraw a run's whole dashboard from its run log."""

from __future__ import annotations

from pathlib import Path

import click

from vizlab.errors import VizlabError
from vizlab.term import console


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--env", default=None, help="Visdom env to draw into (default: the run's own env).")
@click.option("--visdom-url", default=None,
              help="Visdom server (default http://localhost:8097, env VIZLAB_VISDOM_URL).")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to look when RUN_DIR is a run name (default ./runs).")
def replay(run_dir, env, visdom_url, runs_dir):
    """Redraw a run's (or a comparison's) dashboard from its run logs: after a server restart,
    or on another machine.

    RUN_DIR is a run directory, or the name of a run in the runs dir. Every window is replaced,
    so replaying twice gives the same dashboard.
    """
    from vizlab.report.replay import replay as do_replay

    if not run_dir.is_dir():
        named = (runs_dir or Path("runs")) / run_dir
        if run_dir.name == str(run_dir) and named.is_dir():
            run_dir = named
        else:
            raise VizlabError(f"no run directory {run_dir}")
    if (run_dir / "comparison.json").is_file():
        from vizlab.report.compare_board import replay_comparison

        result = replay_comparison(run_dir, visdom_url, env)
    else:
        result = do_replay(run_dir, visdom_url, env)
    console().print(f"replayed {result.events} events of {run_dir} into {len(result.windows)} "
                    f"windows: {result.url}/env/{result.env}", markup=False, highlight=False)
