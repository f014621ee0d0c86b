"""Run logs back into dashboards: `vizlab replay`, and the live sink's redraw after an outage.

A run directory holds ``config.json`` and ``events.jsonl`` (one ``event.to_dict()`` per line,
read back by vizlab.report.runlog.read_events, which skips the torn last line of a killed run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vizlab.errors import VizlabError
from vizlab.report.runlog import EVENTS_FILE, read_events

if TYPE_CHECKING:
    from vizlab.report.dashboard import Dashboard

CONFIG_NAME = "config.json"


def read_config(run_dir: Path) -> dict:
    """The run's config.json as a dict ({} when missing or unreadable)."""
    try:
        with open(run_dir / CONFIG_NAME, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def run_env(run_dir: Path, config: dict | None = None) -> str:
    """The env a run draws into: its config's ``env``, else its name (as vizlab.run.training does)."""
    config = read_config(run_dir) if config is None else config
    return config.get("env") or config.get("name") or run_dir.name


def rebuild(run_dir: Path, recent=(), env: str | None = None) -> Dashboard:
    """The dashboard of a run's log, plus those ``recent`` events the log does not hold yet
    (drawn into ``env``: the run's own by default)."""
    from vizlab.report.dashboard import Dashboard

    logged = list(read_events(run_dir))
    board = Dashboard.from_events(logged, env)
    for event in not_yet_logged(recent, logged):
        board.apply(event)
    return board


def not_yet_logged(recent, logged: list) -> list:
    """Of the events drained lately, those a lagging log (no flush_log) does not hold yet.

    Applying is idempotent for a stretch of events repeated right after itself, so re-applying
    events the log ends with is harmless; re-applying them after *newer* ones is not, hence the
    search for where the log ends.
    """
    recent = list(recent)
    if not recent:
        return []
    last = logged[-1] if logged else None
    for i in range(len(recent) - 1, -1, -1):
        if recent[i] == last:
            return recent[i + 1:]
    if any(event == recent[-1] for event in reversed(logged)):
        return []  # the log is ahead: it holds every recent event (and dropped ones)
    return recent  # the log is behind all of them (not flushed yet)


@dataclass(frozen=True)
class ReplayResult:
    env: str
    url: str
    events: int
    windows: tuple[str, ...]


def replay(run_dir: Path | str, url: str | None = None,
           env: str | None = None) -> ReplayResult:
    """Redraw a run's whole dashboard into ``env`` (default: the run's own env) from its log.

    Windows are replaced, never appended to, so replaying twice gives the same dashboard.
    Raises VizlabError when the run or the server is missing.
    """
    from vizlab.config import default_visdom_url
    from vizlab.report import visdom_client as vc
    from vizlab.report.dashboard import Dashboard

    run_dir = Path(run_dir)
    target = vc.parse_url(url or default_visdom_url())
    log = run_dir / EVENTS_FILE
    if not log.is_file():
        raise VizlabError(f"no run log at {log}: is {run_dir} a vizlab run directory?")
    env = env or run_env(run_dir)
    events = list(read_events(run_dir))
    if not events:
        raise VizlabError(f"the run log {log} holds no events")
    board = Dashboard.from_events(events, env)
    if board.ended is None:
        board.closed_status = "unfinished"  # still running, or killed: the log does not say
    windows = draw_board(board, target, env)
    return ReplayResult(env, target.url, len(events), windows)


def draw_board(board, target, env: str) -> tuple[str, ...]:
    """Replace every window of ``board`` in ``env`` (closing stale ones) and save the env."""
    from vizlab.report import visdom_client as vc

    try:
        viz = vc.connect(target, env)
        panes = board.panes()
        for pane in panes:
            vc.draw(viz, env, pane.win, pane.packet)
        drawn = {p.win for p in panes}
        for win in board.WINDOWS:
            if win not in drawn:
                vc.close_window(viz, env, win)  # a stale window from an earlier draw
        vc.save_env(viz, env)
    except vc.VisdomUnavailable as exc:
        raise VizlabError(f"the Visdom server at {target.url} is not reachable ({exc}); "
                          f"start one with `vizlab server start` or pass --visdom-url") from None
    except vc.VisdomRejected as exc:
        raise VizlabError(str(exc)) from None
    return tuple(p.win for p in panes)
