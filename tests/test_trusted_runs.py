"""Runs you can trust: resume exact or refused, run dirs locked and kept inside --runs-dir, files
from someone else treated as untrusted input, comparisons that end every variant honestly."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import vizlab
from idxdata import write_idx_dataset

from vizlab.config import build_config
from vizlab.events import TrainSteps
from vizlab.report.runlog import read_events
from vizlab.run.rundir import RunDir
from vizlab.run.training import train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=256, n_test=64))


def quick(data_dir, runs, *extra):
    return ("run", "mlp", "--data-dir", data_dir, "--runs-dir", str(runs), "--no-visdom",
            "--progress", "off", "--batch-size", "64", *extra)


def rates(run_dir) -> dict[int, float]:
    """Step -> learning rate, from a run's log."""
    out = {}
    for e in read_events(run_dir):
        if isinstance(e, TrainSteps):
            out.update({e.step + i: lr for i, lr in enumerate(e.lrs)})
    return out


# -- resume: exact, or refused ------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["none", "onecycle", "cosine"])
def test_extending_epochs_replans_the_schedule_by_the_stated_rule(data_dir, tmp_path, schedule):
    """The rule (--help, README): the rate at step k of the extended run is the rate at step k of a
    run started with the new --epochs."""
    common = dict(data_dir=data_dir, visdom=False, progress="off", batch_size=64,
                  schedule=schedule, runs_dir=str(tmp_path))
    short, path = train(build_config("mlp", epochs=2, name="short", **common))
    train(build_config("mlp", epochs=2, name="short", **common).replace(
        resume=str(path), epochs=4))
    _, planned = train(build_config("mlp", epochs=4, name="planned", **common))
    extended, reference = rates(path), rates(planned)
    assert sorted(extended) == list(range(1, 17))  # 256 / 64 = 4 steps an epoch
    assert [extended[k] for k in range(9, 17)] == pytest.approx(
        [reference[k] for k in range(9, 17)], rel=1e-12, abs=0)
    assert min(extended[k] for k in range(9, 16)) > 0  # never the cosine bug's rate 0


def test_cosine_resume_keeps_learning(capsys, data_dir, tmp_path):
    """The reported bug: `--schedule cosine --epochs 2`, then `--resume --epochs 4`, trained at
    rate 0 and froze the test accuracy."""
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path, "--schedule", "cosine", "--epochs",
                                         "2", "--name", "c"))
    assert code == 0, err
    code, _, err = vizlab(capsys, "run", "--resume", str(tmp_path / "c"), "--epochs", "4",
                          "--progress", "off")
    assert code == 0, err
    lrs = rates(tmp_path / "c")
    assert all(lrs[k] > 1e-5 for k in range(9, 15))
    accs = [e.test_acc for e in read_events(tmp_path / "c") if e.kind == "epoch_end"]
    assert len(accs) == 4


@pytest.mark.parametrize("extra, named", [
    (("--lr", "0.1", "--optimizer", "sgd"), "--lr, --optimizer"),
    (("--batch-size", "32",), "--batch-size"),
    (("--seed", "5",), "--seed"),
    (("--limit-train", "100",), "--limit-train"),
])
def test_resume_refuses_options_it_cannot_honour(capsys, data_dir, tmp_path, extra, named):
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path, "--epochs", "1", "--name", "r"))
    assert code == 0, err
    before = (tmp_path / "r" / "events.jsonl").read_bytes()
    code, _, err = vizlab(capsys, "run", "--resume", str(tmp_path / "r"), "--epochs", "2", *extra)
    assert code == 2 and err.count("\n") == 1 and named in err, err
    assert (tmp_path / "r" / "events.jsonl").read_bytes() == before


def test_resume_refuses_another_model_and_allows_the_same_settings(capsys, data_dir, tmp_path):
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path, "--epochs", "1", "--name", "r"))
    assert code == 0, err
    code, _, err = vizlab(capsys, "run", "cnn", "--resume", str(tmp_path / "r"), "--epochs", "2")
    assert code == 2 and "MODEL" in err, err
    code, _, err = vizlab(capsys, "run", "mlp", "--resume", str(tmp_path / "r"), "--epochs", "2",
                          "--batch-size", "64", "--progress", "off")  # the run's own values
    assert code == 0, err


def test_crafted_checkpoint_is_refused_and_runs_no_code(capsys, data_dir, tmp_path):
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path, "--epochs", "1", "--name", "r"))
    assert code == 0, err
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    state["extra"] = Evil()
    with open(tmp_path / "r" / "checkpoint.pt", "wb") as f:
        pickle.dump(state, f)  # what torch.save would write, with the payload
    code, _, err = vizlab(capsys, "run", "--resume", str(tmp_path / "r"), "--epochs", "2")
    assert code == 2 and err.count("\n") == 1 and "refusing checkpoint" in err, err
    assert not marker.exists()


def test_model_file_in_a_run_config_is_not_imported_unless_named(capsys, data_dir, tmp_path):
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path, "--epochs", "1", "--name", "r"))
    assert code == 0, err
    marker = tmp_path / "imported"
    model_file = tmp_path / "net.py"
    model_file.write_text(f"open({str(marker)!r}, 'w').close()\n"
                          "from vizlab.models.mlp import MLP as Net\n")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    config["model"] = f"{model_file}:Net"
    (tmp_path / "r" / "config.json").write_text(json.dumps(config))
    code, _, err = vizlab(capsys, "run", "--resume", str(tmp_path / "r"), "--epochs", "2")
    assert code == 2 and "--trust-model-file" in err and err.count("\n") == 1, err
    assert not marker.exists()


def test_config_with_wrong_types_is_one_line(capsys, data_dir, tmp_path):
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path, "--epochs", "1", "--name", "r"))
    assert code == 0, err
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    for key, value in (("epochs", "8"), ("hidden", ["a"]), ("lr", True), ("model", 3)):
        (tmp_path / "r" / "config.json").write_text(json.dumps({**config, key: value}))
        code, _, err = vizlab(capsys, "run", "--resume", str(tmp_path / "r"))
        assert code == 2 and err.count("\n") == 1 and key in err, (key, err)


# -- names, dirs and the lock --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../x", "/abs/path", "a/b", "..", "x[/]", "sp ace", ""])
def test_run_names_are_one_safe_component(capsys, data_dir, tmp_path, name):
    runs = tmp_path / "inside" / "runs"
    code, out, err = vizlab(capsys, *quick(data_dir, runs, "--epochs", "1", "--name", name))
    assert code == 2 and err.count("\n") == 1 and "--name" in err, err
    assert not (tmp_path / "inside").exists() and not (tmp_path / "x").exists()


def test_compare_name_stays_inside_the_runs_dir(capsys, data_dir, tmp_path):
    runs = tmp_path / "deep" / "runs"
    code, _, err = vizlab(capsys, "compare", "mlp", "--activation", "relu,tanh", "--data-dir",
                          data_dir, "--runs-dir", str(runs), "--no-visdom", "--progress", "off",
                          "--epochs", "1", "--name", "../../a/b")
    assert code == 2 and err.count("\n") == 1 and "--name" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("env, message", [
    ({"VIZLAB_VISDOM_USER": "me"}, "VIZLAB_VISDOM_PASSWORD"),
    ({}, "bad Visdom URL"),
])
def test_dashboard_settings_are_checked_before_the_run_dir_exists(capsys, data_dir, tmp_path,
                                                                  monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    url = "http://localhost:8097" if env else "http://host:notaport"
    args = ("run", "mlp", "--data-dir", data_dir, "--runs-dir", str(tmp_path / "runs"),
            "--visdom-url", url, "--epochs", "1", "--progress", "off")
    code, _, err = vizlab(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_a_file_where_the_runs_dir_should_be(capsys, data_dir, tmp_path):
    (tmp_path / "runs").write_text("not a dir")
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path / "runs", "--epochs", "1"))
    assert code == 2 and "not a directory" in err and err.count("\n") == 1, err


def test_resume_of_a_run_in_use_is_refused(capsys, data_dir, tmp_path):
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path, "--epochs", "1", "--name", "r"))
    assert code == 0, err
    before = (tmp_path / "r" / "events.jsonl").read_bytes()
    with RunDir(tmp_path / "r"):  # another process training it, as far as flock can tell
        code, _, err = vizlab(capsys, "run", "--resume", str(tmp_path / "r"), "--epochs", "2")
    assert code == 2 and "in use by process" in err and err.count("\n") == 1, err
    assert (tmp_path / "r" / "events.jsonl").read_bytes() == before


def test_two_resumes_at_once_one_trains(data_dir, tmp_path):
    """Two real processes resuming one run dir: one trains, the other is refused at once."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "vizlab", *quick(data_dir, tmp_path, "--epochs", "1",
                                                           "--name", "r")], check=True, env=env)
    resume = [sys.executable, "-m", "vizlab", "run", "--resume", str(tmp_path / "r"),
              "--epochs", "400", "--progress", "off"]
    first = subprocess.Popen(resume, stderr=subprocess.PIPE, text=True, env=env)
    log = tmp_path / "r" / "events.jsonl"
    while sum(1 for e in read_events(tmp_path / "r") if e.kind == "run_started") < 2:
        assert first.poll() is None, first.stderr.read()
        time.sleep(0.05)
    second = subprocess.run(resume, capture_output=True, text=True, env=env)
    assert second.returncode == 2 and "in use by process" in second.stderr
    assert str(first.pid) in second.stderr
    first.send_signal(signal.SIGINT)
    assert first.wait(60) == 130
    starts = [e for e in read_events(tmp_path / "r") if e.kind == "run_started"]
    assert len(starts) == 2 and log.exists()


def test_symlinks_inside_a_run_dir_are_not_followed_for_writing(capsys, data_dir, tmp_path):
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path, "--epochs", "1", "--name", "r"))
    assert code == 0, err
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    run = tmp_path / "r"
    os.replace(run / "checkpoint.pt", run / "real.pt")
    os.symlink(run / "real.pt", run / "checkpoint.pt")
    os.symlink(outside, run / ".checkpoint.pt.tmp")  # a planted temporary name
    os.symlink(outside, run / ".config.json.tmp")
    code, _, err = vizlab(capsys, "run", "--resume", str(run), "--epochs", "2", "--progress", "off")
    assert code == 0, err
    assert outside.read_text() == "keep"
    assert not (run / "checkpoint.pt").is_symlink()  # replaced by a file of its own

    (run / "events.jsonl").rename(run / "log.jsonl")
    os.symlink(outside, run / "events.jsonl")
    code, _, err = vizlab(capsys, "run", "--resume", str(run), "--epochs", "3", "--progress", "off")
    assert code == 2 and "events.jsonl" in err and err.count("\n") == 1, err
    assert outside.read_text() == "keep"


# -- comparisons ---------------------------------------------------------------------------------
BOOM = """
import torch
from vizlab.models.mlp import MLP

class Boom(MLP):
    calls = 0

    def forward(self, x):
        Boom.calls += 1
        if Boom.calls > 6 and self.training:
            raise RuntimeError("boom")
        return super().forward(x)
"""


def test_a_failing_comparison_ends_every_variant_honestly(capsys, data_dir, tmp_path):
    (tmp_path / "boom.py").write_text(BOOM)
    with pytest.raises(RuntimeError, match="boom"):  # a bug in the user's model: its traceback
        vizlab(capsys, "compare", f"mlp,{tmp_path / 'boom.py'}:Boom", "--data-dir", data_dir,
               "--runs-dir", str(tmp_path / "runs"), "--no-visdom", "--progress", "off",
               "--epochs", "2", "--name", "cmp", "--batch-size", "64")
    summary = json.loads((tmp_path / "runs" / "cmp" / "comparison.json").read_text())
    assert summary["status"] == "failed"
    for member in summary["members"]:
        ends = [e for e in read_events(tmp_path / "runs" / "cmp" / member["run_dir"])
                if e.kind == "run_ended"]
        assert len(ends) == 1 and ends[0].status == "failed", member


def test_ctrl_c_leaves_every_comparison_variant_resumable(data_dir, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vizlab", "compare", "mlp", "--activation", "relu,tanh",
         "--data-dir", data_dir, "--runs-dir", str(runs), "--name", "cmp", "--no-visdom",
         "--progress", "off", "--epochs", "300", "--batch-size", "16"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    logs = [runs / "cmp" / f"{a}-seed0" / "events.jsonl" for a in ("relu", "tanh")]
    while not all(p.exists() and "epoch_end" in p.read_text() for p in logs):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads((runs / "cmp" / "comparison.json").read_text())["status"] == "interrupted"
    for log in logs:
        assert (log.parent / "checkpoint.pt").exists()
        assert [e.status for e in read_events(log.parent) if e.kind == "run_ended"] == \
            ["interrupted"]
    state = RunDir(logs[0].parent).load_checkpoint()
    assert state["progress"]["global_step"] > 0
    resumed = subprocess.run([sys.executable, "-m", "vizlab", "run", "--resume", str(logs[0].parent),
                              "--epochs", str(state["progress"]["epoch"]), "--progress", "off"],
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert [e.status for e in read_events(logs[0].parent) if e.kind == "run_ended"] == \
        ["interrupted", "finished"]


def _file_size_limit(limit):
    import resource

    def apply():  # in the child: writes past `limit` bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_disk_that_fills_keeps_the_previous_checkpoint(data_dir, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "vizlab", *quick(data_dir, tmp_path, "--epochs", "1",
                                                           "--name", "r")], check=True, env=env)
    run = tmp_path / "r"
    before = (run / "checkpoint.pt").read_bytes()
    limit = len(before) - 1  # the next checkpoint cannot be written whole; log lines still can
    full = subprocess.run([sys.executable, "-m", "vizlab", "run", "--resume", str(run),
                           "--epochs", "2", "--progress", "off"], env=env, capture_output=True,
                          text=True, preexec_fn=_file_size_limit(limit))
    assert full.returncode == 2, full.stderr
    assert full.stderr.count("\n") == 1 and "cannot write" in full.stderr
    assert (run / "checkpoint.pt").read_bytes() == before  # intact
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    ends = [e for e in read_events(run) if e.kind == "run_ended"]
    assert ends[-1].status == "failed" and "cannot write" in ends[-1].message


def test_a_run_longer_than_a_log_can_hold_is_refused_before_it_starts(capsys, data_dir, tmp_path):
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path, "--epochs", "3000000", "--name", "r"))
    assert code == 2 and "steps a run log holds" in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()
