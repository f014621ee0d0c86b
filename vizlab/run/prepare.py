"""Preparing a run: every input checked once, before anything is written, and the one place an
Engine is built.

``prepare_run`` checks the config's device, data, model, resume state (checkpoint and run dir,
locked), and the Visdom URL and credentials, and returns what the engine needs. ``build_engine``
then builds the Engine whole, once the run dir and the sinks exist. ``vizlab run``, every rank of
a distributed run and every variant of ``vizlab compare`` go through both.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vizlab.config import RunConfig
from vizlab.errors import VizlabError
from vizlab.event_checks import MAX_STEP
from vizlab.events import RunStarted
from vizlab.names import slug
from vizlab.run.rundir import RunDir
from vizlab.run.threads import AdaptiveThreads, FixedThreads


@dataclass(frozen=True)
class Prepared:
    """A run whose every input has been checked: nothing of it is on disk yet (but the lock of
    a resumed run dir, which it holds)."""

    cfg: RunConfig
    device: Any  # torch.device
    splits: Any  # vizlab.data.loading.Splits, resident on the device
    state: Any  # vizlab.run.train_state.TrainState, fresh or loaded from the checkpoint
    resumed: RunDir | None  # the locked run dir of a resumed run (rank 0), else None
    threads: Any = None  # the CPU thread policy (vizlab.run.threads)


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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


def check_reporting(cfg: RunConfig) -> None:
    """The dashboard's URL and credentials: the user's errors, found before the run dir exists."""
    if cfg.visdom:
        from vizlab.report import visdom_client as vc

        vc.parse_url(cfg.visdom_url)
        vc.credentials()


def load_resume_state(cfg: RunConfig) -> tuple[RunDir, dict]:
    """Lock the run dir to resume and read its checkpoint (refused with one line if unsafe)."""
    run_dir = RunDir.open(cfg.resume).lock()
    try:
        return run_dir, run_dir.load_checkpoint()
    except BaseException:
        run_dir.unlock()
        raise


def prepare_run(cfg: RunConfig, group=None, device=None, splits=None,
                checkpoint: dict | None = None, resumed: RunDir | None = None,
                adaptive_threads: bool = True) -> Prepared:
    """Check every input of a run and build its training state; write nothing.

    ``group`` (vizlab.distributed.group.Group): this process is one rank; errors on any rank are
    raised on all. ``device``/``splits`` given: data already loaded (a comparison shares it).
    ``checkpoint``/``resumed``: the resume state read by ``load_resume_state`` (rank 0's, sent
    to every rank); read here when ``cfg.resume`` is set and they are not given.
    ``adaptive_threads``: let the thread count follow contention (one process training one
    model on the CPU); otherwise ``--threads`` or torch's default, fixed.
    """
    import torch

    from vizlab.data.loading import load_splits, prepare
    from vizlab.models import build_model
    from vizlab.run.engine import steps_per_epoch
    from vizlab.run.memory_format import FORMATS, has_convolutions
    from vizlab.run.train_state import TrainState

    check_reporting(cfg)
    if cfg.resume and checkpoint is None:
        if group is None:
            resumed, checkpoint = load_resume_state(cfg)
        else:  # rank 0 locks the dir and reads the checkpoint; every rank gets the state
            held: list[RunDir] = []

            def load() -> dict:
                run_dir, state = load_resume_state(cfg)
                held.append(run_dir)
                return state
            checkpoint = group.from_rank0(load)
            resumed = held[0] if held else None
    try:
        if splits is None:
            if group is None:
                prepare(cfg.dataset, cfg.data_dir)
            else:
                with group.agreement():  # one unpack or download per node
                    if group.local_rank == 0:
                        prepare(cfg.dataset, cfg.data_dir)
        with group.agreement() if group else nullcontext():
            if splits is None:
                device = group.device(cfg.device) if group else resolve_device(cfg.device)
                splits = load_splits(cfg.dataset, cfg.data_dir, device=device,
                                     limit_train=cfg.limit_train, limit_test=cfg.limit_test,
                                     val_split=cfg.val_split, seed=cfg.seed)
            torch.manual_seed(cfg.seed)  # variants of one architecture start from the same weights
            model = build_model(cfg.model, cfg.activation, cfg.hidden).to(device)
            layout = "contiguous"  # ranks keep one layout: DDP buckets gradients by their strides
            if group is None and has_convolutions(model):
                layout = fastest_layout(cfg, model, splits, checkpoint)
                model = model.to(memory_format=FORMATS[layout])
            per_epoch = steps_per_epoch(cfg, len(splits.train_y))
            if cfg.epochs * per_epoch > MAX_STEP or cfg.epochs > MAX_STEP:
                raise VizlabError(f"{cfg.epochs} epochs of {per_epoch:,} steps is more than the "
                                  f"{MAX_STEP:,} steps a run log holds; use fewer epochs or a "
                                  "larger --batch-size")
            state = TrainState(cfg, model, per_epoch, checkpoint, memory_format=layout)
            if state.progress.epoch > cfg.epochs:
                done = state.progress.epoch - 1
                raise VizlabError(f"{cfg.resume} already trained {done} epoch{'s' * (done != 1)}; "
                                  "pass a larger --epochs to train longer")
    except BaseException:
        if resumed is not None:
            resumed.unlock()
        raise
    adaptive = adaptive_threads and not cfg.threads and group is None and device.type == "cpu"
    threads = AdaptiveThreads.for_this_process() if adaptive else FixedThreads(cfg.threads)
    return Prepared(cfg, device, splits, state, resumed, threads)


def fastest_layout(cfg: RunConfig, model, splits, checkpoint: dict | None) -> str:
    """The memory format this run trains in (run.memory_format): a resumed run's own, else the
    one measured fastest for this model, batch size and device on this machine."""
    from vizlab.config import cache_dir
    from vizlab.run.memory_format import FORMATS, choose_memory_format, layout_key, remembered_layout

    saved = (checkpoint or {}).get("memory_format")
    if saved in FORMATS:
        return saved
    x, y = splits.train_x[:cfg.batch_size], splits.train_y[:cfg.batch_size]
    return remembered_layout(Path(cache_dir()) / "layouts.json",
                             layout_key(cfg.model, cfg.batch_size, x.device),
                             lambda: choose_memory_format(model, x, y))


def default_run_name(cfg: RunConfig) -> str:
    model = cfg.model.rsplit(":", 1)[-1] if ":" in cfg.model else cfg.model
    model = re.sub(r"[^A-Za-z0-9.-]+", "-", model).strip("-").lower() or "model"
    return slug(f"{model}-{cfg.dataset}-{datetime.now():%Y%m%d-%H%M%S}")


def open_run_dir(prep: Prepared) -> RunDir:
    """The run's dir, locked, with its config.json: the first thing a run writes."""
    cfg = prep.cfg
    if prep.resumed is not None:
        run_dir = prep.resumed
    else:
        run_dir = RunDir.create(cfg.runs_dir, cfg.name, default_run_name(cfg)).lock()
    run_dir.write_config(cfg.replace(name=run_dir.name))
    return run_dir


def build_engine(prep: Prepared, run_dir: RunDir | None, reporter, stop=None, shard=None,
                 inbox=None):
    """The run's Engine, whole: the one place an Engine is built. ``inbox``: the steering
    commands it takes (vizlab.control), None for none."""
    from vizlab.run.engine import Engine

    cfg = prep.cfg if run_dir is None else prep.cfg.replace(name=run_dir.name)
    return Engine(cfg, prep.state, prep.splits, prep.device, reporter, checkpoints=run_dir,
                  stop=stop, shard=shard, threads=prep.threads, inbox=inbox)


def run_started_event(engine, run_dir: Path | RunDir, world_size: int = 1,
                      resumed: bool = False) -> RunStarted:
    """The event that opens (or, resumed, reopens) a run's log."""
    cfg, p, splits = engine.cfg, engine.progress, engine.data
    path = run_dir.path if isinstance(run_dir, RunDir) else Path(run_dir)
    return RunStarted(
        run=path.name, run_dir=str(path), model=cfg.model,
        params=sum(t.numel() for t in engine.model.parameters()), device=str(engine.device),
        dataset=cfg.dataset, classes=tuple(splits.classes), config=cfg.to_dict(),
        started=datetime.now().astimezone().isoformat(timespec="seconds"), epochs=cfg.epochs,
        steps_per_epoch=engine.steps_per_epoch, train_samples=len(splits.train_y),
        test_samples=len(splits.test_y), start_epoch=p.epoch, start_step=p.global_step,
        resumed=resumed, world_size=world_size)
