"""`vizlab compare RUN_DIR_OR_NAME ...`: rank and overlay runs that already exist, no training.

The runs' logs are read as they stand; runs still in progress are followed until they end (or
until their log has not grown for --stale-after seconds: killed, or paused). The comparison gets
its own dir under --runs-dir with comparison.json and comparison.csv, as a training comparison
does, so `vizlab replay` and `vizlab runs` work on it too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click

from vizlab.errors import VizlabError

# The options that still mean something when nothing is trained.
VIEW_OPTIONS = {"runs_dir", "name", "progress", "visdom_url", "no_visdom", "no_server", "env"}


@dataclass(frozen=True)
class DashboardSettings:
    """What vizlab.run.training.open_dashboard reads of a RunConfig."""

    visdom_url: str
    visdom_url_given: bool
    server: bool


class _Stop:
    requested = False


def check_options(options: dict, repeats: int, sequential: bool) -> None:
    extra = [k for k, v in options.items()
             if k not in VIEW_OPTIONS and v not in (None, False)]
    if repeats != 1:
        extra.append("repeats")
    if sequential:
        extra.append("sequential")
    if extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in extra)
        raise VizlabError(f"{flags}: training options do not apply to existing runs "
                          f"(nothing is trained)")


def compare_existing(refs: tuple[str, ...], options: dict, target: float | None,
                     stale_after: float) -> None:
    from vizlab.commands.run import edge_options
    from vizlab.compare import existing
    from vizlab.compare.summary_files import render_files
    from vizlab.compare.target import default_target
    from vizlab.config import PROGRESS
    from vizlab.report.compare_board import CompareBoard, CompareDashboard, VariantEvent
    from vizlab.report.compare_console import CompareConsole
    from vizlab.report.follow import LogTail, follow
    from vizlab.run.rundir import RunDir
    from vizlab.run.training import open_dashboard, sigint_requests_stop

    if stale_after <= 0:
        raise VizlabError(f"--stale-after must be positive; got {stale_after:g}")
    if options.get("progress") not in (None, *PROGRESS):
        raise VizlabError(f"unknown --progress {options['progress']!r}; "
                          f"choose from {', '.join(PROGRESS)}")
    view = edge_options(options, {k for k, v in options.items() if v is not None})
    runs_dir = Path(options.get("runs_dir") or "runs")
    members = existing.load_members(refs, runs_dir)
    differences = existing.differences(members)
    target = target if target is not None else default_target(existing.default_dataset(members))
    name = options.get("name") or f"compare-runs-{datetime.now():%Y%m%d-%H%M%S}"
    directory = runs_dir / name
    env = options.get("env") or name
    owner = RunDir.create(runs_dir, name, name).lock()  # a safe name, inside --runs-dir

    def write_files(rows: list) -> None:
        for file_name, data in render_files(manifest, rows).items():
            owner.write_bytes(file_name, data)
    several = {m.variant for m in members if sum(x.variant == m.variant for x in members) > 1}
    labels = {m: m.variant if m.variant not in several else f"{m.variant} (seed {m.seed})"
              for m in members}
    epochs = max((m.config.get("epochs") for m in members
                  if isinstance(m.config.get("epochs"), int)), default=0)
    screen = CompareConsole(list(labels.values()), epochs, view.get("progress", "plain"))
    board = CompareDashboard([(m.variant, m.seed) for m in members], existing.activations(members),
                             name, target, differences)
    records = {m: existing.Record() for m in members}
    manifest = {**existing.manifest(members, env, target, differences),
                "dir": str(directory.absolute())}
    write_files([])  # the manifest replay needs, even if this is killed

    def take(member, events, sink=None) -> None:
        """Fold a member's events into its record, the terminal, and the board (directly, or
        through the live sink once it exists)."""
        for event in events:
            records[member].take(event)
            screen.handle(labels[member], event)
            item = VariantEvent(member.variant, member.seed, event)
            if sink is not None:
                sink.handle(item)
            else:
                board.apply(item)

    say = screen.console.print
    say(f"comparing {len(members)} existing runs (no training) -> {directory}", markup=False)
    if differences:
        listed = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in differences.items())
        say(f"not controlled: the runs differ in data shaping ({listed})", markup=False,
            highlight=False)
    # What the logs hold now goes straight into the board; the sink then draws it whole.
    tails = {m: LogTail(m.run_dir) for m in members}
    for m, tail in tails.items():
        take(m, tail.read())
        while tail.more:
            take(m, tail.read())
    live = None
    if view.get("visdom", True):
        from vizlab.config import default_visdom_url

        url = open_dashboard(DashboardSettings(view.get("visdom_url", default_visdom_url()),
                                               view.get("visdom_url_given", False),
                                               view.get("server", True)), env)
        live = CompareBoard(url, env, board)
    running = {m: t for m, t in tails.items() if t.ended is None and not t.stale(stale_after)}
    stop = _Stop()
    stale = [m for m in tails if m not in running and tails[m].ended is None]
    screen.start()
    try:
        if running:
            say(f"following {len(running)} run(s) in progress: "
                f"{', '.join(str(m.run_dir) for m in running)} (Ctrl-C stops following)",
                markup=False, highlight=False)
            with sigint_requests_stop(stop):
                stale += follow(running, lambda m, ev: take(m, ev, live.sink if live else None),
                                stale_after, lambda: stop.requested)
    finally:
        screen.close()
        for m in stale:
            say(f"{m.run_dir}: no end in its log and no write for {stale_after:g} s "
                f"(killed, or paused): counted as unfinished", markup=False, highlight=False)
        rows = existing.results(members, records, target)
        write_files(rows)
        owner.unlock()
        if live is not None:
            live.finish(rows, "interrupted" if stop.requested else "finished")
    screen.ranking(rows, target, differences)
    if stop.requested:
        click.echo(f"vizlab: stopped following; results so far in {directory}", err=True)
        sys.exit(130)
