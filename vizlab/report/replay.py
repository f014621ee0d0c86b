"""Run logs back into dashboards: `vizlab replay`, and the live sink's redraw after an outage.

A run directory holds ``config.json`` and ``events.jsonl`` (one ``event.to_dict()`` per line,
read back by vizlab.report.runlog.read_events, which skips the torn last line of a killed run and
reports any other bad line). Both files are untrusted input: read_config type-checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vizlab.errors import VizlabError
from vizlab.report.runlog import read_events, read_json_object
from vizlab.run_files import CONFIG_FILE
from vizlab.term import warn

if TYPE_CHECKING:
    from vizlab.report.dashboard import Dashboard



def read_config(run_dir: Path) -> dict:
    """The run's config.json as a dict, for display: {} when missing; {} and one warning line
    when it is not a regular file, not a JSON object, or holds a setting of the wrong type."""
    from vizlab.config import RunConfig
    from vizlab.event_checks import check_fields

    path = Path(run_dir) / CONFIG_FILE
    try:
        data = read_json_object(path)
        check_fields(RunConfig, data, partial=True)
        return data
    except FileNotFoundError:
        return {}
    except VizlabError as exc:  # not a regular file, too big, not JSON
        warn(f"{exc}; ignoring it")
    except ValueError as exc:
        warn(f"{path}: {exc}; ignoring it")
    except OSError as exc:
        warn(f"cannot read {path} ({exc.strerror or exc}); ignoring it")
    return {}


def run_env(run_dir: Path, config: dict | None = None) -> str:
    """The env a run draws into: its config's ``env``, else its name (as vizlab.run.training does)."""
    config = read_config(run_dir) if config is None else config
    return config.get("env") or config.get("name") or Path(run_dir).name


def rebuild(run_dir: Path, recent=(), env: str | None = None) -> Dashboard:
    """The dashboard of a run's log, plus those ``recent`` events the log does not hold yet
    (drawn into ``env``: the run's own by default)."""
    from vizlab.report.dashboard import Dashboard

    board, recent = Dashboard(env), list(recent)
    last, seen = None, False  # the log's last event; whether it holds the newest recent one
    for event in read_events(run_dir):  # streamed: memory follows the board, not the log
        board.apply(event)
        last = event
        seen = seen or (bool(recent) and event == recent[-1])
    for event in _not_logged(recent, last, seen):
        board.apply(event)
    return board


def not_yet_logged(recent, logged: list) -> list:
    """Of the events drained lately, those a lagging log (no flush_log) does not hold yet.

    Applying is idempotent for a stretch of events repeated right after itself, so re-applying
    events the log ends with is harmless; re-applying them after *newer* ones is not, hence the
    search for where the log ends.
    """
    recent = list(recent)
    return _not_logged(recent, logged[-1] if logged else None,
                       bool(recent) and any(event == recent[-1] for event in logged))


def _not_logged(recent: list, last, seen: bool) -> list:
    """not_yet_logged, from the log's last event and whether it holds ``recent[-1]``."""
    if not recent:
        return []
    for i in range(len(recent) - 1, -1, -1):
        if recent[i] == last:
            return recent[i + 1:]
    if seen:
        return []  # the log is ahead: it holds every recent event (and dropped ones)
    return recent  # the log is behind all of them (not flushed yet)


@dataclass(frozen=True)
class ReplayResult:
    env: str
    url: str
    events: int
    windows: tuple[str, ...]
    bad_lines: int = 0  # skipped as bad (and reported in one warning line)


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
    env = env or run_env(run_dir)
    log, board, count = read_events(run_dir), Dashboard(env), 0
    try:
        for event in log:  # streamed: memory follows the board, not the log
            board.apply(event)
            count += 1
    except FileNotFoundError:
        raise VizlabError(f"no run log at {log.path}: is {run_dir} a vizlab run directory?") \
            from None
    except OSError as exc:
        raise VizlabError(f"cannot read {log.path} ({exc.strerror or exc})") from None
    if not count:
        raise VizlabError(f"the run log {log.path} holds no events")
    if board.ended is None:
        board.closed("unfinished")  # still running, or killed: the log does not say
    windows = draw_board(board, target, env)
    return ReplayResult(env, target.url, count, windows, log.bad)


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
