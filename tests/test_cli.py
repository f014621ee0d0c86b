"""The CLI as users meet it: help, bad input (one line, exit 2, nothing lost), Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import vizlab
from idxdata import write_idx_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=256, n_test=64))


def quick(data_dir, runs, *extra):
    return ("run", "mlp", "--data-dir", data_dir, "--runs-dir", str(runs), "--no-visdom",
            "--progress", "plain", "--epochs", "1", "--batch-size", "64", *extra)


def test_help_imports_no_heavy_module():
    code = ("import sys; from vizlab.cli import main\n"
            "for argv in (['--help'], ['run', '--help'], ['--version']):\n"
            "    try: main(argv)\n"
            "    except SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'torchvision', 'visdom') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
    assert "run" in out.stdout and "Train" in out.stdout


def test_run_prints_epoch_lines_and_summary(capsys, data_dir, tmp_path):
    code, out, err = vizlab(capsys, *quick(data_dir, tmp_path / "runs", "--name", "one"))
    assert code == 0, err
    assert "epoch 1/1" in out and "acc" in out and "finished" in out
    assert (tmp_path / "runs" / "one" / "events.jsonl").exists()


@pytest.mark.parametrize("args, message", [
    (("run", "nosuchmodel"), "unknown model 'nosuchmodel'; choose from mlp-raw, mlp, cnn"),
    (("run", "mlp", "--activation", "swish"), "unknown --activation 'swish'; choose from relu"),
    (("run", "mlp", "--optimizer", "lion"), "unknown --optimizer 'lion'; choose from sgd"),
    (("run", "mlp", "--epochs", "0"), "--epochs must be positive"),
    (("run", "mlp", "--batch-size", "-5"), "--batch-size must be positive"),
    (("run", "mlp", "--lr", "0"), "--lr must be positive"),
    (("run", "mlp", "--lr", "fast"), "'fast' is not a valid float"),
    (("run", "cnn", "--hidden", "64-64"), "--hidden applies to mlp only"),
    (("run", "mlp", "--hidden", "64,64"), "--hidden must be widths joined by dashes"),
    (("run", "mlp", "--device", "tpu"), "unknown --device 'tpu'"),
    (("run", "nosuch.module:Net"), "nosuch"),
    (("run",), "give a MODEL"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, message):
    code, out, err = vizlab(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("vizlab: error: "), err
    assert message in err
    assert "Traceback" not in err


def test_cuda_missing_is_one_line(capsys, data_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = vizlab(capsys, *quick(data_dir, tmp_path / "runs", "--device", "cuda"))
    assert code == 2 and "CUDA is not available" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing written for a run that never started


def test_unwritable_runs_dir_and_data_dir(capsys, data_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, _, err = vizlab(capsys, *quick(data_dir, blocker / "runs"))
    assert code == 2 and "cannot write runs dir" in err and err.count("\n") == 1
    code, _, err = vizlab(capsys, *quick(str(blocker / "data"), tmp_path / "runs"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_bad_resume_leaves_the_run_intact(capsys, data_dir, tmp_path):
    runs = tmp_path / "runs"
    assert vizlab(capsys, *quick(data_dir, runs, "--name", "keep"))[0] == 0
    run_dir = runs / "keep"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    for bad in (("--epochs", "1"), ("--epochs", "-1"), ("--device", "cuda:7")):
        code, _, err = vizlab(capsys, "run", "--resume", str(run_dir), "--progress", "plain",
                              "--no-visdom", *bad)
        assert code == 2 and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    code, _, err = vizlab(capsys, *quick(data_dir, runs, "--name", "keep"))
    assert code == 2 and "exists" in err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_ctrl_c_checkpoints_and_exits_130(data_dir, tmp_path):
    runs = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vizlab", "run", "mlp", "--data-dir", data_dir, "--runs-dir",
         str(runs), "--name", "stopme", "--no-visdom", "--progress", "plain", "--epochs", "500",
         "--batch-size", "16"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = runs / "stopme" / "events.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and "epoch_end" in log.read_text()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "interrupted" in err and "--resume" in err
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[-1]["event"] == "run_ended" and lines[-1]["status"] == "interrupted"
    assert (runs / "stopme" / "checkpoint.pt").exists()


def test_run_trains_on_shipped_mnist_in_an_empty_data_dir(capsys, tmp_path):
    data = tmp_path / "empty-data-dir"
    code, out, err = vizlab(capsys, "run", "mlp", "--data-dir", str(data), "--runs-dir",
                            str(tmp_path / "runs"), "--no-visdom", "--progress", "plain",
                            "--epochs", "1", "--limit-train", "2000", "--limit-test", "1000")
    assert code == 0, err
    assert "mnist, 2,000 train / 1,000 test" in out
    assert sorted(p.name for p in (data / "MNIST" / "raw").iterdir()) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte"]
    accuracy = float(out.split("acc")[1].split("%")[0])
    assert accuracy > 50  # real digits, learned in 16 steps (chance: 10%)
