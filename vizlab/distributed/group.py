"""One rank of a training run in several processes: torch.distributed and DistributedDataParallel.

``vizlab run MODEL --nproc N`` (vizlab.distributed.launcher) starts N copies of ``python -m vizlab run MODEL
...`` through PyTorch's elastic launcher; ``torchrun [--nnodes ... --rdzv-endpoint ...] -m vizlab
run MODEL ...`` starts the same processes itself. Each finds its place in torchrun's environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): ``Group.from_env()``.

- Backend: gloo for CPU tensors, NCCL for CUDA tensors (``cpu:gloo,cuda:nccl`` where CUDA is
  present); process k of a node trains on ``cuda:LOCAL_RANK``.
- ``--batch-size`` stays the global batch; vizlab.distributed.data_parallel splits each one over
  the ranks so that a step's gradient and the test metrics are what one process computes.
- Rank 0 alone writes the run dir and reports; an input error on any rank is raised on every rank.
- Every collective times out (``VIZLAB_DIST_TIMEOUT`` seconds, default 300): no rank waits forever.
- Under ``--nproc`` the ranks write their failure into torchelastic's per-rank error file and print
  nothing; the launcher names the rank and the cause on one line.

Torch is imported inside functions: the CLI imports this module at start-up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from vizlab.distributed import loopback
from vizlab.errors import VizlabError

TIMEOUT_ENV = "VIZLAB_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 300.0  # seconds; rank 0 may spend a while on a checkpoint or a Visdom start
LAUNCHED_ENV = "VIZLAB_LAUNCHED"  # set by `--nproc`: ranks leave error reporting to the launcher


class SharedError(VizlabError):
    """An input error every rank raises alike (rank 0 alone prints it under a bare torchrun)."""


class Terminated(BaseException):
    """SIGTERM: the launcher stops this rank (another one failed, or the job was killed)."""


def launched_by_vizlab() -> bool:
    return os.environ.get(LAUNCHED_ENV) == "1"


def rank_device(name: str, local_rank: int):
    """The device of the process with this LOCAL_RANK: cuda:LOCAL_RANK on CUDA, else the CPU."""
    import torch

    if name == "mps" or name.startswith("cuda:"):
        raise VizlabError(f"--device {name} cannot be shared by several processes; use --device "
                          "cuda (process k of a node takes cuda:k) or --device cpu")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise VizlabError(f"--device {name}: CUDA is not available here "
                          f"(torch {torch.__version__}); use --device cpu")
    if local_rank >= torch.cuda.device_count():
        raise VizlabError(f"{local_rank + 1} processes on this node need {local_rank + 1} CUDA "
                          f"devices; it has {torch.cuda.device_count()} (or use --device cpu)")
    return torch.device("cuda", local_rank)


class Group:
    """This process's place in a distributed run, and the few collectives vizlab needs."""

    def __init__(self, rank: int, world_size: int, local_rank: int, timeout: float):
        self.rank, self.world_size, self.local_rank, self.timeout = (rank, world_size,
                                                                     local_rank, timeout)

    @classmethod
    def from_env(cls, environ=os.environ) -> Group | None:
        """The group torchrun put this process in; None for a single process."""
        try:
            world = int(environ.get("WORLD_SIZE", "1"))
            rank, local = int(environ.get("RANK", "0")), int(environ.get("LOCAL_RANK", "0"))
            timeout = float(environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
        except ValueError as exc:
            raise VizlabError(f"bad torch.distributed environment: {exc}") from None
        if world <= 1:
            return None
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in environ]
        if missing:
            raise VizlabError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: start "
                              "several processes with `vizlab run --nproc N` or torchrun")
        if not 0 <= rank < world or timeout <= 0:
            raise VizlabError(f"bad torch.distributed environment: RANK={rank}, WORLD_SIZE="
                              f"{world}, {TIMEOUT_ENV}={timeout}")
        return cls(rank, world, local, timeout)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def start(self) -> None:
        import torch
        import torch.distributed as dist

        backend = "gloo"
        if torch.cuda.is_available() and dist.is_nccl_available():
            backend = "cpu:gloo,cuda:nccl"  # object collectives stay on the CPU
        timeout = timedelta(seconds=self.timeout)
        store = loopback.group_store(os.environ, self.rank, self.world_size, timeout)
        if store is None:
            dist.init_process_group(backend, timeout=timeout)
        else:
            dist.init_process_group(backend, store=store, rank=self.rank,
                                    world_size=self.world_size, timeout=timeout)

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    def device(self, name: str):
        import torch

        device = rank_device(name, self.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device

    def from_rank0(self, fn: Callable[[], Any]) -> Any:
        """fn() on rank 0 only; every rank gets its result, or raises its VizlabError."""
        import torch.distributed as dist

        box: list[Any] = [None]
        if self.rank == 0:
            try:
                box[0] = ("ok", fn())
            except VizlabError as exc:
                box[0] = ("error", str(exc))
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise SharedError(value)
        return value

    @contextmanager
    def agreement(self):
        """Run the block on every rank; a VizlabError on any rank is then raised on every rank."""
        import torch.distributed as dist

        error = None
        try:
            yield
        except VizlabError as exc:
            error = str(exc)
        errors: list[str | None] = [None] * self.world_size
        dist.all_gather_object(errors, error)
        if len(set(errors)) == 1 and error is not None:
            raise SharedError(error)  # every rank alike: a problem of the run, not of a rank
        for rank, message in enumerate(errors):
            if message is not None:
                raise SharedError(f"rank {rank}: {message}")

    def barrier(self) -> None:
        import torch
        import torch.distributed as dist

        dist.all_reduce(torch.zeros(1))  # CPU tensor: gloo, whatever the training backend

    def shard(self, model, device):
        """This rank's part of the training (vizlab.distributed.data_parallel.Shard: DDP around ``model``)."""
        from vizlab.distributed.data_parallel import Shard

        return Shard(self.rank, self.world_size, model, device)


# -- one rank's life ---------------------------------------------------------------------------
def _raise_terminated(signum, frame):
    raise Terminated("stopped by the launcher (another process failed, or the job was killed)")


@contextmanager
def worker(group: Group, who: Callable[[], str] | None = None):
    """Start the process group, run the block (this rank's whole run), and end the process.

    A failure becomes a clear report: under `--nproc`, written to torchelastic's error file for
    the launcher (the rank prints nothing); under a bare torchrun, printed by the failing rank
    (by rank 0 alone for an error every rank shares). ``who()`` names the rank in that report
    when "rank N" says too little (a comparison's rank adds the runs it trains).
    """
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        group.start()
        yield
        status = 0
    except SystemExit as exc:  # a status the run chose (130: interrupted, checkpoint written)
        status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException as exc:
        status, message, secondary = classify(exc, group.rank, who() if who else None)
        if not launched_by_vizlab():
            if isinstance(exc, SharedError) and group.rank != 0:
                _leave(status)
            if isinstance(exc, VizlabError) and not isinstance(exc, SharedError):
                raise VizlabError(message) from None
            raise
        bug = status == 1 and not secondary  # a traceback helps only there
        write_error_file(group.rank, status, message, secondary,
                         traceback.format_exc() if bug else "")
        _leave(status)  # no close: after a failure the group may be broken
    finally:
        signal.signal(signal.SIGTERM, previous)
    group.close()
    _leave(status)


def _leave(status: int) -> None:
    """End the process now. Everything this rank wrote is closed and synced by now, and torch's
    C++ teardown after a DDP run on gloo sometimes aborts (std::terminate in a worker thread:
    about 1 exit in 12 here), which would turn a finished run into a failed one."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def classify(exc: BaseException, rank: int, who: str | None = None) -> tuple[int, str, bool]:
    """(exit status, one line naming the rank (``who``, default "rank N") and the cause, whether
    it only echoes another rank's failure: a lost connection or a collective that timed out)."""
    import torch.distributed as dist

    first = re.sub(r"^\[[^\]]*:\d+\]\s*", "", (str(exc).strip().splitlines() or [""])[0])
    who = who or f"rank {rank}"
    if isinstance(exc, SharedError):
        return 2, str(exc), False
    if isinstance(exc, VizlabError):
        return 2, f"{who}: {exc}", False
    if isinstance(exc, KeyboardInterrupt):
        return 130, f"{who} interrupted", False
    if isinstance(exc, Terminated):
        return 143, f"{who} {exc}", True
    if isinstance(exc, RuntimeError) and ("timed out" in first.lower()
                                          or "timeout" in first.lower()):
        limit = os.environ.get(TIMEOUT_ENV, f"{DEFAULT_TIMEOUT:g}")
        return 1, (f"{who} gave up waiting for the other processes after {limit} s "
                   f"({TIMEOUT_ENV}): {first}"), True
    if isinstance(exc, getattr(dist, "DistError", ())) or any(
            s in first for s in ("Connection closed by peer", "Connection reset by peer",
                                 "Broken pipe")):
        return 1, f"{who} lost contact with another process: {first}", True
    return 1, f"{who} failed: {type(exc).__name__}: {first}", False


def write_error_file(rank: int, code: int, message: str, secondary: bool, tb: str) -> None:
    """torchelastic's per-rank error file (its format, plus vizlab's own fields)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    now = time.time()
    data = {"message": message, "timestamp": int(now),
            "vizlab": {"rank": rank, "exit": code, "message": message, "secondary": secondary,
                       "time": now, "traceback": tb}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
