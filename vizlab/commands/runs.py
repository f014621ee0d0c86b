"""`vizlab runs`: list the runs in a runs dir; `vizlab runs rm NAME...`: delete runs and their envs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click

from vizlab.config import default_visdom_url
from vizlab.errors import VizlabError
from vizlab.names import is_safe_name
from vizlab.run.rundir import RunDir
from vizlab.run_files import COMPARISON_JSON
from vizlab.term import console, warn

RUNS_DIR_HELP = "Where the run dirs are (default ./runs)."
_SUMMARY_KINDS = ("run_started", "epoch_end", "run_ended")


@dataclass(frozen=True)
class RunSummary:
    name: str
    model: str
    dataset: str
    status: str  # finished | stopped | failed | interrupted | unfinished (running, killed) | empty
    best_acc: float | None
    epochs: str
    started: datetime | None


def summarize(run_dir: Path) -> RunSummary:
    """What `vizlab runs` shows of one run, from its config and the few summary lines of its
    log (step chunks and images are not even parsed)."""
    from vizlab.report.replay import read_config
    from vizlab.report.runlog import read_events

    config = read_config(run_dir)
    started = status = None
    best, planned, done = None, config.get("epochs"), 0
    model, dataset = config.get("model", "?"), config.get("dataset", "?")
    try:
        for event in read_events(run_dir, kinds=_SUMMARY_KINDS):
            if event.kind == "run_started":
                started = started or event.started
                model, dataset, planned = event.model, event.dataset, event.epochs
                status = "unfinished"
            elif event.kind == "epoch_end":
                done = event.epoch
                best = event.best_acc if best is None else max(best, event.best_acc)
            elif event.kind == "run_ended":
                status = event.status
    except FileNotFoundError:
        pass
    except (OSError, VizlabError) as exc:  # a FIFO or a device named events.jsonl, say
        warn(str(exc) if isinstance(exc, VizlabError) else f"cannot read {run_dir}: {exc}")
        status = "unreadable"
    when = None
    if started:
        try:
            when = datetime.fromisoformat(started)
        except ValueError:
            pass
    if when is None:
        try:
            when = datetime.fromtimestamp(run_dir.stat().st_mtime).astimezone()
        except OSError:
            pass
    return RunSummary(run_dir.name, str(model), str(dataset), status or "empty", best,
                      f"{done}/{planned}" if planned else str(done), when)


def summarize_comparison(comparison_dir: Path) -> RunSummary:
    """One line for a `vizlab compare` dir, from its variants' runs."""
    from vizlab.report.runlog import read_json_object

    try:
        data = read_json_object(comparison_dir / COMPARISON_JSON)
        members = [comparison_dir / m["run_dir"] for m in data.get("members", [])]
    except VizlabError as exc:
        warn(str(exc))
        members = []
    except (OSError, TypeError, KeyError):
        members = []
    parts = [summarize(p) for p in members if p.is_dir()]
    statuses = {s.status for s in parts}
    status = next((s for s in ("failed", "interrupted", "unfinished", "empty") if s in statuses),
                  "finished" if parts else "empty")
    accs = [s.best_acc for s in parts if s.best_acc is not None]
    models = sorted({s.model for s in parts})
    return RunSummary(comparison_dir.name, f"compare: {len(parts)} x {','.join(models)}",
                      parts[0].dataset if parts else "?", status, max(accs) if accs else None,
                      parts[0].epochs if parts else "0",
                      min((s.started for s in parts if s.started), default=None))


def find_runs(runs_dir: Path) -> list[Path]:
    """Subdirectories that look like runs (a config.json or an events.jsonl) or comparisons."""
    if not runs_dir.is_dir():
        return []
    return [p for p in runs_dir.iterdir()
            if p.is_dir() and any((p / f).is_file()
                                  for f in ("config.json", "events.jsonl", COMPARISON_JSON))]


@click.group(invoke_without_command=True)
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=RUNS_DIR_HELP)
@click.pass_context
def runs(ctx, runs_dir):
    """List the runs: name, model, dataset, status, best accuracy, date (newest first)."""
    ctx.obj = runs_dir
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table
    from rich.text import Text

    root = runs_dir or Path("runs")
    found = sorted((summarize_comparison(p) if (p / COMPARISON_JSON).is_file() else summarize(p)
                    for p in find_runs(root)),
                   key=lambda s: (s.started.timestamp() if s.started else 0.0, s.name),
                   reverse=True)
    if not found:
        console().print(f"no runs in {root}", markup=False, highlight=False)
        return
    table = Table(title=f"runs in {root}", title_justify="left", box=None, pad_edge=False)
    for column in ("name", "model", "dataset", "status", "best acc", "epochs", "date"):
        table.add_column(column, justify="right" if column == "best acc" else "left",
                         overflow="fold")
    styles = {"finished": "green", "failed": "red", "interrupted": "yellow", "stopped": "cyan"}
    for s in found:  # Text cells: names are shown as they are, never read as Rich markup
        table.add_row(Text(s.name), Text(s.model), Text(s.dataset),
                      Text(s.status, style=styles.get(s.status, "")),
                      Text("-" if s.best_acc is None else f"{s.best_acc:.2f}%"), Text(s.epochs),
                      Text(s.started.strftime("%Y-%m-%d %H:%M") if s.started else "-"))
    console().print(table)


@runs.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=RUNS_DIR_HELP)
@click.option("--visdom-url", default=None,
              help="Visdom server holding the runs' envs (default http://localhost:8097, "
                   "env VIZLAB_VISDOM_URL).")
@click.pass_context
def rm(ctx, names, runs_dir, visdom_url):
    """Delete runs (their directories) and their Visdom envs."""

    root = runs_dir or ctx.obj or Path("runs")
    dirs = []
    for name in names:  # check every name before deleting anything
        path = root / name
        if not is_safe_name(name):
            raise VizlabError(f"{name!r} is not a run name (give names as `vizlab runs` lists them)")
        if path.is_symlink() or path not in find_runs(root):
            raise VizlabError(f"no run {name!r} in {root}")
        dirs.append(RunDir(path))
    try:
        for rd in dirs:  # every one of them, and every run inside a comparison, is idle
            for inner in [rd, *(RunDir(p) for p in find_runs(rd.path))]:
                inner.lock()
        envs = {rd.path: own_env(rd.path) for rd in dirs}
        present = [e for e in envs.values() if e is not None]
        gone = _delete_envs(sorted(set(present)), visdom_url or default_visdom_url()) if present else set()
        for rd in dirs:
            shutil.rmtree(rd.path)
            env = envs[rd.path]
            note = f" and its Visdom env {env}" if env in gone else ""
            console().print(f"deleted {rd.path}{note}", markup=False, highlight=False)
    finally:
        for rd in dirs:
            rd.unlock()


def own_env(run_dir: Path) -> str | None:
    """The Visdom env this run dir drew into, if it is the run that did: a copied or moved run
    dir names another dir in its config, and deleting it must not delete that run's env."""
    from vizlab.report.replay import read_config, run_env
    from vizlab.report.runlog import read_json_object

    if (run_dir / COMPARISON_JSON).is_file():
        try:
            data = read_json_object(run_dir / COMPARISON_JSON)
            recorded, env = Path(data["dir"]), data["env"]
        except (OSError, VizlabError, KeyError, TypeError):
            return None
    else:
        config = read_config(run_dir)
        runs_dir, name = config.get("runs_dir"), config.get("name")
        if not (isinstance(runs_dir, str) and isinstance(name, str)):
            return None
        recorded, env = Path(runs_dir) / name, run_env(run_dir, config)
    try:
        same = recorded.resolve() == run_dir.resolve()
    except OSError:
        return None
    return env if same and is_safe_name(env) else None


def _delete_envs(envs: list[str], url: str) -> set[str]:
    """Delete those envs that exist on the server; the set deleted. A missing server only
    warns: the run dirs go anyway (an env can be closed in the Visdom page later)."""
    from vizlab.report import visdom_client as vc

    target = vc.parse_url(url)
    try:
        viz = vc.connect(target, "main")
        present = set(vc.env_names(viz))
        for env in envs:
            if env in present:
                try:
                    vc.delete_env(viz, env)
                except vc.VisdomRejected:
                    pass  # visdom deletes the env, then fails to remove a file it never saved
        return {env for env in envs if env in present} - set(vc.env_names(viz))
    except vc.VisdomUnavailable as exc:
        warn(f"Visdom at {target.url} not reachable ({exc}); "
             f"did not delete env(s) {', '.join(envs)}")
    except vc.VisdomRejected as exc:
        warn(f"Visdom at {target.url}: {exc}; did not delete env(s) {', '.join(envs)}")
    return set()
