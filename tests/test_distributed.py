"""Several processes on torch.distributed (gloo, CPU): `vizlab run --nproc N`, torchrun, failures.

Each launch starts real processes through PyTorch's elastic launcher with a standalone rendezvous
on a free loopback port, so tests never collide. Launches cost a few seconds each (every rank
imports torch): they are few, and each checks as much as it can.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import processes_mentioning
from idxdata import write_idx_dataset

from vizlab.cli import main
from vizlab.config import build_config
from vizlab.distributed.group import Group, write_error_file
from vizlab.report.runlog import read_events
from vizlab.run.training import train

# 300 training samples after the validation split, batches of 41: every global batch splits
# unevenly over two ranks (21 + 20, the last one 7 + 6), and so do the 101 test samples.
SETTINGS = dict(epochs=2, batch_size=41, val_split=25, optimizer="sgd", lr=0.005,
                schedule="none")
FLAGS = ["--epochs", "2", "--batch-size", "41", "--val-split", "25", "--optimizer", "sgd",
         "--lr", "0.005", "--schedule", "none"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=325, n_test=101))


def vizlab_cmd(*args: str, torchrun: bool = False) -> list[str]:
    if torchrun:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "vizlab", *args]
    return [sys.executable, "-m", "vizlab", *args]


def env(**extra: str) -> dict:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("VIZLAB_", "TORCHELASTIC"))}
    out.update(OMP_NUM_THREADS="1", **extra)
    return out


def run_cli(*args: str, torchrun: bool = False, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(vizlab_cmd(*args, torchrun=torchrun), capture_output=True, text=True,
                          env=env(**extra), timeout=180, check=False)


def events_of(run_dir: Path, kind: str) -> list:
    return [e for e in read_events(run_dir) if e.kind == kind]


def step_losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(e.step + i, loss) for e in events_of(run_dir, "train_steps")
            for i, loss in enumerate(e.losses)]


def assert_same_metrics(got: Path, want: Path) -> None:
    """Float tolerance: the ranks sum the same numbers in another order."""
    got_steps, want_steps = step_losses(got), step_losses(want)
    assert [s for s, _ in got_steps] == [s for s, _ in want_steps]
    assert [v for _, v in got_steps] == pytest.approx([v for _, v in want_steps], rel=1e-4)
    g, w = events_of(got, "epoch_end")[-1], events_of(want, "epoch_end")[-1]
    assert (g.epoch, g.step) == (w.epoch, w.step)
    for field in ("train_loss", "test_loss", "val_loss"):
        assert getattr(g, field) == pytest.approx(getattr(w, field), rel=1e-4), field
    assert abs(g.test_acc - w.test_acc) <= 100 / 101 + 1e-9  # at most one borderline flip
    assert sum(map(sum, g.confusion)) == 101
    gp, wp = events_of(got, "predictions")[-1], events_of(want, "predictions")[-1]
    assert len(gp.preds) == len(wp.preds) == 32
    assert sum(a != b for a, b in zip(gp.preds, wp.preds)) <= 1
    assert gp.confidences == pytest.approx(wp.confidences, abs=1e-3)


def test_two_processes_match_one(data_dir, tmp_path):
    one_cfg = build_config("mlp", data_dir=data_dir, runs_dir=str(tmp_path / "one"), name="run",
                           visdom=False, progress="off", **SETTINGS)
    ended, one = train(one_cfg)
    assert ended.status == "finished"
    assert 50 < events_of(one, "epoch_end")[-1].test_acc < 100  # learning, and not trivially

    runs = tmp_path / "two"
    done = run_cli("run", "mlp", "--data-dir", data_dir, "--runs-dir", str(runs), "--no-visdom",
                   "--progress", "plain", "--nproc", "2", *FLAGS)
    assert done.returncode == 0, done.stderr
    assert "vizlab:" not in done.stderr and "Traceback" not in done.stderr
    # Only rank 0 reports: one start line, one line per epoch.
    assert done.stdout.count("training mlp") == 1 and done.stdout.count("epoch 2/2") == 1
    [two] = list(runs.iterdir())  # one run dir, named by rank 0
    assert sorted(p.name for p in two.iterdir()) == [".lock", "checkpoint.pt", "config.json",
                                                     "events.jsonl"]
    config = json.loads((two / "config.json").read_text())
    assert config["world_size"] == 2 and config["batch_size"] == 41
    [started] = events_of(two, "run_started")
    assert started.world_size == 2 and started.config["batch_size"] == 41
    assert started.steps_per_epoch == 8  # global batches: ceil(300 / 41)
    assert [e.kind for e in read_events(two)] == [e.kind for e in read_events(one)]
    assert_same_metrics(two, one)
    # The checkpoint is the plain model's (no DDP wrapper): a single process can resume it.
    state = torch.load(two / "checkpoint.pt", weights_only=False)
    assert state["model"].keys() == torch.load(one / "checkpoint.pt", weights_only=False)[
        "model"].keys()


def test_ctrl_c_stops_every_rank_and_resume_under_torchrun_matches(data_dir, tmp_path):
    runs = tmp_path / "runs"
    args = ["run", "mlp", "--data-dir", data_dir, "--runs-dir", str(runs), "--name", "stopme",
            "--no-visdom", "--progress", "plain", "--batch-size", "16", "--optimizer", "sgd",
            "--lr", "0.02", "--schedule", "none"]
    proc = subprocess.Popen(vizlab_cmd(*args, "--epochs", "500", "--nproc", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    log = runs / "stopme" / "events.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (log.exists() and "epoch_end" in log.read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # to the launcher only, as a terminal's Ctrl-C would
    _, err = proc.communicate(timeout=120)  # a hang guard: a rank left waiting would need 300 s
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "interrupted" in err, err
    assert f"--resume {runs / 'stopme'} --nproc 2" in err
    assert processes_mentioning(str(runs)) == []  # no rank left behind
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["event"] == "run_ended" and last["status"] == "interrupted"
    assert last["epochs_done"] < 500  # stopped where it was, not at the end
    state = torch.load(runs / "stopme" / "checkpoint.pt", weights_only=False)
    epochs = state["progress"]["epoch"]  # the epoch it stopped in: finish that one

    done = run_cli("run", "--resume", str(runs / "stopme"), "--epochs", str(epochs),
                   torchrun=True)
    assert done.returncode == 0, done.stderr
    starts = events_of(runs / "stopme", "run_started")
    assert [s.resumed for s in starts] == [False, True]
    assert [s.world_size for s in starts] == [2, 2]

    cfg = build_config("mlp", data_dir=data_dir, runs_dir=str(tmp_path / "one"), name="run",
                       visdom=False, progress="off", batch_size=16, optimizer="sgd", lr=0.02,
                       schedule="none", epochs=epochs)
    _, one = train(cfg)
    got, want = events_of(runs / "stopme", "epoch_end"), events_of(one, "epoch_end")
    assert [e.epoch for e in got] == list(range(1, epochs + 1))
    assert got[-1].test_loss == pytest.approx(want[-1].test_loss, rel=1e-3)
    assert [v for _, v in step_losses(runs / "stopme")] == pytest.approx(
        [v for _, v in step_losses(one)], rel=1e-3, abs=1e-6)


FLAKY_MODEL = '''
import os
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        if os.environ.get("RANK", "-") == os.environ.get("FAIL_INIT_ON_RANK"):
            raise MemoryError("not enough memory for the weights")
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        if self.training and os.environ.get("RANK", "-") == os.environ.get("FAIL_STEP_ON_RANK"):
            raise RuntimeError("lost the GPU")
        return self.fc(x.flatten(1))
'''


@pytest.fixture
def flaky_model(tmp_path):
    path = tmp_path / "flaky.py"
    path.write_text(FLAKY_MODEL)
    return f"{path}:Net"


def test_input_error_on_one_rank_is_one_line_exit_2(data_dir, tmp_path, flaky_model):
    runs = tmp_path / "runs"
    done = run_cli("run", flaky_model, "--data-dir", data_dir, "--runs-dir", str(runs),
                   "--no-visdom", "--nproc", "2", *FLAGS, FAIL_INIT_ON_RANK="1")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("vizlab: error: rank 1: Net() failed")
    assert "MemoryError: not enough memory for the weights" in done.stderr
    assert not runs.exists()  # every rank agreed before anything was written


def test_crash_on_one_rank_names_it(data_dir, tmp_path, flaky_model):
    runs = tmp_path / "runs"
    done = run_cli("run", flaky_model, "--data-dir", data_dir, "--runs-dir", str(runs),
                   "--no-visdom", "--progress", "plain", "--nproc", "2", *FLAGS,
                   FAIL_STEP_ON_RANK="1")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "vizlab: error: rank 1 failed: RuntimeError: lost the GPU"
    # A bug: the failed rank's traceback, once; not the launcher's report of every process.
    assert done.stderr.count("Traceback") == 1 and "ChildFailedError" not in done.stderr
    assert "torch/distributed/elastic" not in done.stderr
    [run_dir] = list(runs.iterdir())
    assert json.loads((run_dir / "events.jsonl").read_text().splitlines()[-1])["status"] == \
        "failed"  # rank 0 closed its log


# -- without processes ---------------------------------------------------------------------------
def cli(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (("run", "nosuchmodel", "--nproc", "2"), "unknown model 'nosuchmodel'"),
    (("run", "mlp", "--nproc", "0"), "--nproc must be positive"),
    (("run", "mlp", "--nproc", "2", "--device", "cuda:1"), "cannot be shared by several"),
])
def test_bad_input_fails_before_any_process_starts(capsys, tmp_path, monkeypatch, args, message):
    from vizlab.distributed import launcher

    started = []
    monkeypatch.setattr(launcher, "launch", lambda *a: started.append(a))  # records, starts none
    code, err = cli(capsys, *args, "--runs-dir", str(tmp_path / "runs"), "--no-visdom")
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert started == [] and not (tmp_path / "runs").exists()


def test_taken_run_name_fails_before_any_process_starts(capsys, data_dir, tmp_path):
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    code, err = cli(capsys, "run", "mlp", "--data-dir", data_dir, "--runs-dir",
                    str(tmp_path / "runs"), "--name", "taken", "--nproc", "2")
    assert code == 2 and "exists" in err and err.count("\n") == 1


def test_environment_of_a_rank():
    base = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert Group.from_env({}) is None
    assert Group.from_env({"WORLD_SIZE": "1", "RANK": "0", **base}) is None
    group = Group.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", **base})
    assert (group.rank, group.world_size, group.local_rank) == (3, 4, 1)
    assert group.timeout == 300
    for bad in ({"WORLD_SIZE": "2", "RANK": "0"}, {"WORLD_SIZE": "2", "RANK": "2", **base},
                {"WORLD_SIZE": "two", **base}):
        with pytest.raises(Exception, match="torch.distributed|MASTER_ADDR"):
            Group.from_env(bad)


def test_root_cause_is_the_failed_rank_not_the_ones_that_lost_it(tmp_path, monkeypatch):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from vizlab.distributed.launcher import explain_failures

    def failure(rank, code, message, secondary, tb=""):
        path = tmp_path / f"error-{rank}.json"
        monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(path))
        write_error_file(rank, code, message, secondary, tb)
        return ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=code, error_file=str(path))

    lost = failure(0, 1, "rank 0 lost contact with another process: closed", True)
    crash = failure(1, 1, "rank 1 failed: RuntimeError: lost the GPU", False, "Traceback ...")
    outcome = explain_failures({0: lost, 1: crash})
    assert (outcome.status, outcome.message, outcome.traceback) == (
        1, "rank 1 failed: RuntimeError: lost the GPU", "Traceback ...")
    killed = ProcessFailure(local_rank=2, pid=7, exitcode=-9, error_file=str(tmp_path / "none"))
    assert explain_failures({2: killed}).message == "rank 2 was killed by signal 9 (SIGKILL)"
    stopped = failure(1, 130, "rank 1 interrupted", False)
    assert explain_failures({1: stopped}).status == 130
