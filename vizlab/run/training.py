"""One training run from a RunConfig: validate everything, then create the run dir, wire the sinks,
train, and close. Nothing on disk is touched until every input has been checked, so bad input never
costs a run log or a checkpoint."""

from __future__ import annotations

import json
import re
import signal
import threading
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path

from vizlab.config import RunConfig
from vizlab.errors import VizlabError
from vizlab.events import RunEnded
from vizlab.run.checkpoint import Checkpointer
from vizlab.run.rundir import CONFIG_FILE, run_started_event, write_json_atomic


def resolve_device(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VizlabError(f"--device {name}: CUDA is not available here "
                              f"(torch {torch.__version__}); use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise VizlabError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise VizlabError("--device mps: MPS is not available here; use --device cpu")
    return torch.device(name)


def default_run_name(cfg: RunConfig) -> str:
    model = cfg.model.rsplit(":", 1)[-1] if ":" in cfg.model else cfg.model
    model = re.sub(r"[^A-Za-z0-9.-]+", "-", model).strip("-").lower() or "model"
    return f"{model}-{cfg.dataset}-{datetime.now():%Y%m%d-%H%M%S}"


def create_run_dir(runs_dir: str, name: str | None, default: str) -> Path:
    """A new run dir; never reuses one (that would mix two runs' logs)."""
    root = Path(runs_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if name:
            path = root / name
            path.mkdir()
            return path
        for i in range(1, 1000):
            path = root / (default if i == 1 else f"{default}-{i}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except FileExistsError:
        raise run_dir_exists_error(root, name) from None
    except OSError as exc:
        raise VizlabError(f"cannot write runs dir {root}: {exc.strerror or exc}") from None
    raise VizlabError(f"cannot find a free run name under {root}")


def run_dir_exists_error(root: Path, name: str) -> VizlabError:
    return VizlabError(f"run dir {root / name} exists; pick another --name "
                       f"or continue it with --resume {root / name}")


def check_resume_epochs(cfg: RunConfig, next_epoch: int) -> None:
    if next_epoch > cfg.epochs:
        raise VizlabError(f"{cfg.resume} already trained {next_epoch - 1} epochs; "
                          "pass a larger --epochs to train longer")


def load_resume_config(run_dir: str, overrides: dict) -> RunConfig:
    """The saved config of a run, with the options given now (epochs, device, ...) on top."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        saved = json.loads(path.read_text())
    except OSError:
        raise VizlabError(f"--resume {run_dir}: no {CONFIG_FILE} there (not a vizlab run dir)") from None
    except json.JSONDecodeError as exc:
        raise VizlabError(f"--resume {run_dir}: {CONFIG_FILE} is not valid JSON ({exc})") from None
    cfg = RunConfig.from_dict(saved)
    p = Path(run_dir)
    return cfg.replace(**overrides, resume=str(p), runs_dir=str(p.parent), name=p.name)


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


def build_sinks(cfg: RunConfig, run_dir: Path, run_name: str, inbox=None):
    """The run log first (the durable record), then Visdom (the dashboard's door for steering
    commands, into ``inbox``), then the terminal."""
    from vizlab.report.console import ConsoleSink
    from vizlab.report.runlog import RunLogSink

    runlog = RunLogSink(run_dir)
    sinks = [runlog]
    if cfg.visdom:
        sinks.append(make_visdom_sink(cfg, run_dir, run_name, runlog.flush, inbox))
    sinks.append(ConsoleSink(cfg.progress))
    return sinks


def open_dashboard(cfg: RunConfig, env: str) -> str:
    """The Visdom URL to draw into: start a local server for the default URL when none answers
    (never for one the user chose), and say where the dashboard is."""
    from vizlab.term import console

    url = cfg.visdom_url
    if not cfg.visdom_url_given and cfg.server:
        from vizlab.server.lifecycle import ensure_server

        started = ensure_server(url)
        if started:
            console().print(f"started a local Visdom server at {started} "
                            "(stop it with `vizlab server stop`)", markup=False)
    console().print(f"dashboard: {url.rstrip('/')}/env/{env}", markup=False)
    return url


def make_visdom_sink(cfg: RunConfig, run_dir: Path, run_name: str, flush_log, inbox=None):
    from vizlab.report.runlog import EVENTS_FILE
    from vizlab.report.visdom_sink import VisdomSink

    env = cfg.env or run_name
    url = open_dashboard(cfg, env)
    return VisdomSink(url, env, log_path=run_dir / EVENTS_FILE, flush_log=flush_log,
                      inbox=inbox)


def train(cfg: RunConfig, group=None) -> tuple[RunEnded, Path]:
    """Run (or resume) one training run; returns its RunEnded event and its run dir.

    With a ``group`` (vizlab.distributed.group.Group) this process is one rank of several: every rank
    checks its input and trains its shard, an input error on any rank is raised on all of them,
    and rank 0 alone creates the run dir (its name is broadcast), reports and checkpoints.
    """
    import torch

    from vizlab.control import Inbox
    from vizlab.data.loading import load_splits, prepare
    from vizlab.models import build_model
    from vizlab.report import Reporter
    from vizlab.run.control_files import watching
    from vizlab.run.engine import Engine, StopFlag

    cfg = cfg.replace(world_size=group.world_size if group else 1)
    # 1. Check every input before anything is written.
    resume_state = None
    if cfg.resume:
        load = Checkpointer(Path(cfg.resume)).load
        resume_state = group.from_rank0(load) if group else load()  # rank 0's checkpoint
    if group is not None:  # one unpack or download per node, not one per process
        with group.agreement():
            if group.local_rank == 0:
                prepare(cfg.dataset, cfg.data_dir)
    with group.agreement() if group else nullcontext():
        device = group.device(cfg.device) if group else resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        splits = load_splits(cfg.dataset, cfg.data_dir, device=device,
                             limit_train=cfg.limit_train, limit_test=cfg.limit_test,
                             val_split=cfg.val_split, seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, cfg.activation, cfg.hidden).to(device)
        stop = StopFlag()
        # Steering: rank 0 alone listens; the other ranks act on what it hands them.
        inbox = Inbox() if cfg.control and (group is None or group.is_main) else None
        engine = Engine(cfg, model, splits, device, reporter=None, stop=stop, inbox=inbox)
        if resume_state is not None:
            engine.load_state_dict(resume_state)
            check_resume_epochs(cfg, engine.progress.epoch)

    # 2. Only now touch the disk (rank 0 alone; its sinks are the only ones).
    sinks: list = []

    def open_run_dir() -> str:
        run_dir = Path(cfg.resume) if cfg.resume else create_run_dir(
            cfg.runs_dir, cfg.name, default_run_name(cfg))
        named = cfg.replace(name=run_dir.name)
        write_json_atomic(run_dir / CONFIG_FILE, named.to_dict())
        sinks.extend(build_sinks(named, run_dir, run_dir.name, inbox))
        return str(run_dir)

    run_dir = Path(group.from_rank0(open_run_dir) if group else open_run_dir())
    if not cfg.resume:
        cfg = cfg.replace(name=run_dir.name)
    reporter = Reporter(sinks)
    engine.cfg, engine.reporter = cfg, reporter
    engine.checkpointer = Checkpointer(run_dir) if group is None or group.is_main else None
    if group is not None:
        engine.shard = group.shard(model, device)

    p = engine.progress
    reporter.handle(run_started_event(engine, run_dir, splits, device, cfg.world_size,
                                      resumed=resume_state is not None))
    reporter.handle(engine.sample_set_event())
    try:
        with sigint_requests_stop(stop), watching(run_dir, inbox):
            ended = engine.run()
    except BaseException as exc:  # a second Ctrl-C, or a bug: the log still says how it ended
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        ended = RunEnded(status=status, epochs_done=len(p.history), step=p.global_step,
                         message=f"{type(exc).__name__}: {exc}")
        reporter.handle(ended)
        raise
    finally:
        reporter.close(ended.status)
    return ended, run_dir

