"""One training run from a RunConfig: prepare it (every input checked, vizlab.run.prepare), then
open its run dir, wire the sinks, build the engine, train, and close. Nothing on disk is touched
until every input has been checked, so bad input never costs a run log or a checkpoint."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from vizlab.config import RunConfig
from vizlab.events import RunEnded
from vizlab.run.rundir import RunDir


@contextmanager
def sigint_requests_stop(stop):
    """First Ctrl-C: finish the step, checkpoint, stop. Second: the usual KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        stop.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def build_sinks(cfg: RunConfig, run_dir: RunDir, inbox=None):
    """The run log first (the durable record), then Visdom (the dashboard's door for steering
    commands, into ``inbox``), then the terminal."""
    from vizlab.report.console import ConsoleSink
    from vizlab.report.runlog import RunLogSink

    runlog = RunLogSink(run_dir.path)
    sinks = [runlog]
    if cfg.visdom:
        sinks.append(make_visdom_sink(cfg, run_dir, runlog.flush, inbox))
    sinks.append(ConsoleSink(cfg.progress))
    return sinks


def open_dashboard(cfg: RunConfig, env: str) -> str:
    """The Visdom URL to draw into: start a local server for the default URL when none answers
    (never for one the user chose), and say where the dashboard is."""
    from vizlab.term import console

    url = cfg.visdom_url
    started = None
    if not cfg.visdom_url_given and cfg.server:
        from vizlab.server.lifecycle import ensure_server

        started = ensure_server(url)
    note = "  (started a local Visdom server: `vizlab server stop` stops it)" if started else ""
    console().print(f"dashboard: {url.rstrip('/')}/env/{env}{note}", markup=False)
    return url


def make_visdom_sink(cfg: RunConfig, run_dir: RunDir, flush_log, inbox=None):
    from vizlab.report.visdom_sink import VisdomSink

    env = cfg.env or run_dir.name
    url = open_dashboard(cfg, env)
    return VisdomSink(url, env, log_path=run_dir.events_path, flush_log=flush_log, inbox=inbox)


def train(cfg: RunConfig, group=None) -> tuple[RunEnded, Path]:
    """Run (or resume) one training run; returns its RunEnded event and its run dir.

    With a ``group`` (vizlab.distributed.group.Group) this process is one rank of several: every
    rank checks its input and trains its shard, an input error on any rank is raised on all of
    them, and rank 0 alone opens the run dir (its name is broadcast), reports and checkpoints.
    """
    from vizlab.control import Inbox
    from vizlab.report import Reporter
    from vizlab.run.control_files import watching
    from vizlab.run.engine import StopFlag
    from vizlab.run.prepare import build_engine, open_run_dir, prepare_run, run_started_event

    cfg = cfg.replace(world_size=group.world_size if group else 1)
    prep = prepare_run(cfg, group)  # 1. every input checked; nothing written
    main = group is None or group.is_main
    inbox = Inbox() if cfg.control and main else None  # steering: rank 0 alone listens
    run_dir: RunDir | None = None
    sinks: list = []

    def open_dir() -> str:  # 2. only now touch the disk (rank 0 alone; its sinks are the only ones)
        nonlocal run_dir
        run_dir = open_run_dir(prep)
        try:
            sinks.extend(build_sinks(prep.cfg.replace(name=run_dir.name), run_dir, inbox))
        except BaseException:
            run_dir.unlock()
            raise
        return str(run_dir.path)

    try:
        path = Path(group.from_rank0(open_dir) if group else open_dir())
        reporter = Reporter(sinks)
        stop = StopFlag()
        shard = group.shard(prep.state.model, prep.device) if group else None
        engine = build_engine(prep, run_dir if main else None, reporter, stop, shard, inbox)
        p = engine.progress
        reporter.handle(run_started_event(engine, path, cfg.world_size, resumed=bool(cfg.resume)))
        reporter.handle(engine.sample_set_event())
        try:
            with sigint_requests_stop(stop), watching(path, inbox):
                ended = engine.run()
        except BaseException as exc:  # a second Ctrl-C, or a bug: the log still says how it ended
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            ended = RunEnded(status=status, epochs_done=len(p.history), step=p.global_step,
                             message=f"{type(exc).__name__}: {exc}")
            reporter.handle(ended)
            raise
        finally:
            reporter.close(ended.status)
    finally:
        if run_dir is not None:
            run_dir.unlock()
        elif prep.resumed is not None:
            prep.resumed.unlock()
    return ended, path
