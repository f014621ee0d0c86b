"""Steering a run of two processes (`vizlab run --nproc 2`, gloo on the CPU): rank 0 listens, and
every rank acts on each command at the same agreed step.

The proof that rank 1 changed its rate too: from a checkpoint written while paused (just after
the change), one process trains the same steps; its losses match the two processes' only if both
ranks trained at the new rate (DDP averages gradients, but each rank steps its own optimizer).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import vizlab, wait_until
from idxdata import write_idx_dataset
from test_control_door import log_records
from test_engine import Collect, StopAfter

from vizlab.config import RunConfig
from vizlab.events import TrainSteps
from vizlab.report import Reporter
from vizlab.run.prepare import build_engine, prepare_run
from vizlab.run.rundir import RunDir
from vizlab.run_files import CHECKPOINT_FILE, CONTROL_DIR


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=325, n_test=101))


def answered_step(out: str, marker: str) -> int:
    return int(out.split(marker)[1].split()[0])


def test_two_processes_pause_change_rate_and_stop_on_one_step(data_dir, tmp_path, capsys):
    run_dir = tmp_path / "runs" / "pair"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIZLAB_", "TORCHELASTIC"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vizlab", "run", "mlp", "--nproc", "2", "--device", "cpu",
         "--data-dir", data_dir, "--epochs", "100000", "--batch-size", "41", "--val-split", "25",
         "--optimizer", "sgd", "--lr", "0.005", "--schedule", "none",
         "--runs-dir", str(tmp_path / "runs"), "--name", "pair", "--no-visdom",
         "--progress", "plain"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "OMP_NUM_THREADS": "1"})
    try:
        wait_until(lambda: proc.poll() is not None or (run_dir / CONTROL_DIR).is_dir(), 180,
                 "the run's control folder")
        code, out, err = vizlab(capsys, "control", str(run_dir), "pause")
        assert code == 0, err
        paused = answered_step(out, "paused after step ")
        code, out, err = vizlab(capsys, "control", str(run_dir), "lr", "x0.5")
        assert code == 0 and f"from step {paused + 1}" in out, err
        code, out, err = vizlab(capsys, "control", str(run_dir), "checkpoint")
        assert code == 0 and f"checkpoint written at step {paused}" in out, err
        (tmp_path / "at-pause").mkdir()
        shutil.copy(run_dir / CHECKPOINT_FILE, tmp_path / "at-pause" / CHECKPOINT_FILE)
        code, out, err = vizlab(capsys, "control", str(run_dir), "resume")
        assert code == 0, err
        wait_until(lambda: max(r["step"] + len(r["losses"]) - 1 for r in log_records(run_dir)
                             if r["event"] == "train_steps") > paused + 30, 120, "more steps")
        code, out, err = vizlab(capsys, "control", str(run_dir), "stop")
        assert code == 0, err
        stopped = answered_step(out, "stopping after step ")
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    records = log_records(run_dir)
    assert records[-1]["event"] == "run_ended" and records[-1]["status"] == "stopped"
    assert records[-1]["step"] == stopped
    pair = {r["step"] + i: (loss, r["lrs"][i]) for r in records if r["event"] == "train_steps"
            for i, loss in enumerate(r["losses"])}

    # One process, from the checkpoint written while paused, trains the same steps.
    cfg = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text())).replace(
        world_size=1, threads=1)
    sink = Collect()
    prep = prepare_run(cfg, checkpoint=RunDir(tmp_path / "at-pause").load_checkpoint())
    single = build_engine(prep, None, Reporter([sink]), stop=StopAfter(stopped - paused - 1))
    assert single.run().step == stopped
    alone = {e.step + i: (loss, e.lrs[i]) for e in sink.of(TrainSteps)
             for i, loss in enumerate(e.losses)}
    steps = range(paused + 1, stopped + 1)
    assert sorted(alone) == list(steps)
    assert {alone[s][1] for s in steps} == {pair[s][1] for s in steps} == {0.0025}
    assert [pair[s][0] for s in steps] == pytest.approx([alone[s][0] for s in steps], rel=1e-4)
