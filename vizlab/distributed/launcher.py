"""`vizlab run --nproc N`: check the input once, start N ranks through PyTorch's elastic launcher
(``torch.distributed.run``, what ``torchrun`` runs), and sum up how they ended in one line.

Each rank runs ``python -m vizlab run ...`` (vizlab.distributed.group does the rest). A failed rank
leaves its cause in torchelastic's per-rank error file; ``explain_failures`` picks the root cause
(not the ranks that merely lost contact with it) and names its rank. Ctrl-C reaches the ranks as
SIGINT from the elastic agent: they stop together at their next agreed step, rank 0 writes the
checkpoint and prints the one line, and the launcher exits 130.

Torch is imported inside functions: the CLI imports this module at start-up.
"""

from __future__ import annotations

import logging
import os
import signal
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vizlab.config import RunConfig
from vizlab.distributed import loopback
from vizlab.distributed.group import LAUNCHED_ENV, rank_device
from vizlab.errors import VizlabError

INTERRUPTED = 130


@dataclass(frozen=True)
class Outcome:
    status: int  # the exit status for the launcher: 0, 1, 2 or 130
    message: str = ""  # the one line, "" when there is nothing to say (or a rank said it)
    traceback: str = ""  # the failed rank's traceback, for a bug (status 1)


def precheck(cfg: RunConfig, nproc: int) -> None:
    """Raise the VizlabError every rank would raise, before any process starts: the run is
    prepared here exactly as a rank prepares it (on the CPU), then let go."""
    from vizlab.run.prepare import prepare_run

    rank_device(cfg.device, nproc - 1)  # the node's last process needs its own GPU too
    if not cfg.resume and cfg.name and (Path(cfg.runs_dir) / cfg.name).exists():
        raise VizlabError(f"run dir {Path(cfg.runs_dir) / cfg.name} exists; pick another --name "
                          f"or continue it with --resume {Path(cfg.runs_dir) / cfg.name}")
    prep = prepare_run(cfg.replace(device="cpu"))
    if prep.resumed is not None:
        prep.resumed.unlock()  # rank 0 takes it again


def launch(argv: list[str], nproc: int) -> Outcome:
    """Run ``python -m vizlab *argv`` in nproc processes on this machine; how they ended."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    saved_env = dict(os.environ)
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    saved_handlers = {sig: signal.getsignal(sig) for sig in handled}
    os.environ[LAUNCHED_ENV] = "1"
    os.environ.update(loopback.one_machine_env())
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # the ranks' c10d chatter
    # Share the cores instead of oversubscribing them (torchrun's default would be 1 thread).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    agent_log = logging.getLogger("torch.distributed")
    saved_log = agent_log.propagate, list(agent_log.handlers)
    if "LOGLEVEL" not in os.environ:  # the agent's own log lines would bury the one line
        agent_log.propagate, agent_log.handlers = False, [logging.NullHandler()]
    try:
        # torchrun's --standalone, less its listening on every interface (vizlab.distributed
        # .loopback): the rendezvous store is ours, on 127.0.0.1, and so is MASTER_ADDR.
        _store, port = loopback.rendezvous_store()  # referenced until the job ends
        torchrun.run(torchrun.parse_args([
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{loopback.LOOPBACK}:{port}",
            "--rdzv-id", uuid.uuid4().hex, "--local-addr", loopback.LOOPBACK,
            "--nnodes", "1", "--nproc-per-node", str(nproc),
            "--max-restarts", "0", "--monitor-interval", "0.1", "--module", "vizlab", *argv]))
        return Outcome(0)
    except ChildFailedError as exc:
        return explain_failures(exc.failures)
    except SignalException as exc:  # the agent stopped the ranks; rank 0 said how to resume
        return Outcome(128 + int(exc.sigval))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        agent_log.propagate, agent_log.handlers = saved_log
        for sig, handler in saved_handlers.items():
            signal.signal(sig, handler)


def explain_failures(failures: Mapping[int, object]) -> Outcome:
    """The root cause among the failed ranks (torchelastic ProcessFailure objects by rank)."""
    rows = []
    for rank, failure in failures.items():
        data = getattr(failure, "error_file_data", None)
        info = data.get("vizlab") if isinstance(data, dict) else None
        exitcode = int(getattr(failure, "exitcode", 1))
        if info:
            status, message = int(info["exit"]), str(info["message"])
            secondary, when, tb = bool(info["secondary"]), float(info["time"]), info["traceback"]
        elif exitcode == INTERRUPTED:  # stopped by Ctrl-C (its own, or passed on by another
            # rank) at a step boundary; rank 0 said where the checkpoints are
            status, secondary, when, tb, message = INTERRUPTED, False, float("inf"), "", ""
        elif exitcode < 0:  # SIGTERM and SIGKILL come from the agent stopping the others
            status, when, tb = 1, float("inf"), ""
            secondary = -exitcode in (signal.SIGTERM, signal.SIGKILL)
            message = f"rank {rank} was killed by signal {-exitcode} ({_signal_name(-exitcode)})"
        else:
            status, secondary, when, tb = 1, False, float("inf"), ""
            message = f"rank {rank} exited with status {exitcode} before it could say why"
        rows.append(((status == INTERRUPTED, secondary, when, rank), status, message, tb))
    if not rows:
        return Outcome(1, "the processes failed without a report")
    _, status, message, tb = min(rows, key=lambda row: row[0])
    if status == INTERRUPTED:
        return Outcome(INTERRUPTED)  # rank 0 printed where the checkpoint is
    if status not in (1, 2):
        status = 1
    return Outcome(status, message, tb if status == 1 else "")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def worker_argv(ctx, skip: tuple[str, ...] = ("nproc",)) -> list[str]:
    """The command line each rank gets: the options given to this `vizlab` command, less skip."""
    import click

    argv = [ctx.info_name]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if param.name in skip or source in (None, click.core.ParameterSource.DEFAULT):
            continue
        value = ctx.params[param.name]
        if isinstance(param, click.Argument):  # nargs=-1 gives a tuple
            argv[1:1] = [str(v) for v in (value if isinstance(value, tuple) else (value,))]
        elif getattr(param, "is_flag", False):
            if value:
                argv.append(param.opts[0])
        else:
            argv.append(f"{param.opts[0]}={value}")
    return argv


def check_nproc(nproc: int) -> None:
    if nproc < 1:
        raise VizlabError(f"--nproc must be positive; got {nproc}")
    if os.environ.get("TORCHELASTIC_RUN_ID") or ("RANK" in os.environ and "WORLD_SIZE" in os.environ):
        raise VizlabError("--nproc starts its own processes; under torchrun leave it out "
                          "(torchrun's --nproc-per-node sets the number)")
