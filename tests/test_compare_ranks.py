"""A comparison over several processes: `vizlab compare --nproc N` and torchrun, the deal, the
relay through the process group's store, a failing rank, Ctrl-C.

The launches start real processes (gloo on the CPU) through PyTorch's elastic launcher with a
standalone rendezvous on a free port; each costs a few seconds and checks as much as it can.
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
from conftest import processes_mentioning, vizlab
from idxdata import write_idx_dataset

from vizlab.compare.dealing import deal, deal_variants, forward_flops, share_label
from vizlab.compare.variants import expand, parse_axes
from vizlab.report.runlog import read_events

ACTS = ("relu", "tanh", "sigmoid", "gelu")
# 300 training samples after the validation split, batches of 41: 8 steps an epoch.
FLAGS = ["--epochs", "2", "--batch-size", "41", "--val-split", "25", "--no-visdom"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=325, n_test=101))


def env(**extra: str) -> dict:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("VIZLAB_", "TORCHELASTIC"))}
    out.update(OMP_NUM_THREADS="1", **extra)
    return out


def command(*args: str, torchrun: bool = False) -> list[str]:
    if torchrun:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "vizlab", *args]
    return [sys.executable, "-m", "vizlab", *args]


def run_cli(*args: str, torchrun: bool = False, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args, torchrun=torchrun), capture_output=True, text=True,
                          env=env(**extra), timeout=300, check=False)


def variants_of(data_dir, **options):
    axes, rest = parse_axes({"model": "mlp", "data_dir": data_dir, "epochs": 2,
                             "batch_size": "41", "val_split": 25, **options})
    return expand(axes, rest)


def lock_pid(run_dir: Path) -> int:
    return int((run_dir / ".lock").read_text())


def step_losses(run_dir: Path) -> list[float]:
    return [v for e in read_events(run_dir) if e.kind == "train_steps" for v in e.losses]


def kinds(run_dir: Path) -> list[str]:
    return [e.kind for e in read_events(run_dir)]


# -- one dashboard, the same results as one process --------------------------------------------
def test_two_processes_draw_one_dashboard_and_match_one_process(capsys, data_dir, tmp_path,
                                                                visdom_server):
    runs = tmp_path / "runs"
    code, _, err = vizlab(capsys, "compare", "mlp", "--activation", ",".join(ACTS),
                          "--data-dir", data_dir, "--runs-dir", str(runs), "--name", "one",
                          "--progress", "off", *FLAGS)
    assert code == 0, err
    done = run_cli("compare", "mlp", "--activation", ",".join(ACTS), "--data-dir", data_dir,
                   "--runs-dir", str(runs), "--name", "two", "--progress", "plain",
                   *FLAGS[:-1], "--visdom-url", visdom_server.url, "--nproc", "2")
    assert done.returncode == 0, done.stderr
    assert "vizlab:" not in done.stderr and "Traceback" not in done.stderr
    # Rank 0 alone speaks: the deal once, every run's epochs, one ranking.
    assert done.stdout.count("in 2 processes (rank 0: relu, sigmoid; rank 1: tanh, gelu)") == 1
    assert done.stdout.count("epoch 2/2") == 4 and done.stdout.count("#1 ") == 1

    one, two = runs / "one", runs / "two"
    shares = deal_variants(variants_of(data_dir, activation=",".join(ACTS)), 2)
    assert shares == [[0, 2], [1, 3]]  # four runs of equal cost: two each
    pids = [{lock_pid(two / f"{ACTS[i]}-seed0") for i in share} for share in shares]
    assert all(len(p) == 1 for p in pids) and pids[0] != pids[1]  # each share in its own process
    for act in ACTS:
        got, want = two / f"{act}-seed0", one / f"{act}-seed0"
        assert kinds(got) == kinds(want)  # a complete run log, written by its own rank
        assert (got / "checkpoint.pt").exists()
        # Same data order and initial weights whatever the number of processes: the same
        # numbers, up to float noise from another process's thread pool.
        assert step_losses(got) == pytest.approx(step_losses(want), rel=1e-5)
        g = [e for e in read_events(got) if e.kind == "epoch_end"][-1]
        w = [e for e in read_events(want) if e.kind == "epoch_end"][-1]
        assert g.test_loss == pytest.approx(w.test_loss, rel=1e-5)
        assert g.test_acc == pytest.approx(w.test_acc, abs=100 / 101 + 1e-9)

    summary = json.loads((two / "comparison.json").read_text())
    reference = json.loads((one / "comparison.json").read_text())
    assert summary["status"] == "finished"
    assert [m["run_dir"] for m in summary["members"]] == [f"{a}-seed0" for a in ACTS]
    assert {v["variant"] for v in summary["variants"]} == set(ACTS)
    want = {v["variant"]: v for v in reference["variants"]}
    for row in summary["variants"]:
        assert row["status"] == "finished" and row["params"] == want[row["variant"]]["params"]
        assert row["final_acc"] == pytest.approx(want[row["variant"]]["final_acc"], abs=1.0)
        assert row["test_loss"] == pytest.approx(want[row["variant"]]["test_loss"], rel=1e-5)

    viz = visdom_server.client()

    def window(win):
        return json.loads(viz.get_window_data(win, env="two"))["content"]

    by_name = {v["variant"]: v for v in summary["variants"]}
    for win in ("cmp_train_loss", "cmp_test_acc", "cmp_test_loss"):
        assert [t["name"] for t in window(win)["data"]] == list(ACTS), win  # every rank's runs
    for trace in window("cmp_test_acc")["data"]:
        expected = [e["test_acc"] for e in by_name[trace["name"]]["runs"][0]["epochs"]]
        assert trace["x"] == [1, 2] and trace["y"] == pytest.approx(expected)
    for trace in window("cmp_train_loss")["data"]:
        assert trace["x"] == list(range(1, 2 * 8 + 1))  # every step of both epochs, once
    ranking = json.dumps(window("cmp_summary"))
    assert all(act in ranking for act in ACTS)


def test_torchrun_deals_repeats_too(data_dir, tmp_path):
    runs = tmp_path / "runs"
    done = run_cli("compare", "mlp", "--lr", "0.01,0.002,0.0005", "--repeats", "2",
                   "--data-dir", data_dir, "--runs-dir", str(runs), "--name", "cmp",
                   "--progress", "plain", *FLAGS, torchrun=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("in 2 processes") == 1 and done.stdout.count("#1 ") == 1
    summary = json.loads((runs / "cmp" / "comparison.json").read_text())
    assert summary["status"] == "finished" and len(summary["members"]) == 6
    for row in summary["variants"]:
        assert row["repeats"] == 2 and [r["seed"] for r in row["runs"]] == [0, 1]
        assert all(r["status"] == "finished" and len(r["epochs"]) == 2 for r in row["runs"])
    pids = {lock_pid(runs / "cmp" / m["run_dir"]) for m in summary["members"]}
    assert len(pids) == 2


# -- faults --------------------------------------------------------------------------------------
FLAKY_MODEL = '''
import os
import time
from pathlib import Path

import torch.nn as nn


class Net(nn.Module):
    """Fails on one rank, once the other rank's runs have ended."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        if self.training and os.environ.get("RANK", "-") == os.environ.get("FAIL_ON_RANK"):
            logs = [Path(p) for p in os.environ["WAIT_FOR"].split(os.pathsep)]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not all(
                    p.exists() and "run_ended" in p.read_text() for p in logs):
                time.sleep(0.05)
            raise RuntimeError("lost the GPU")
        return self.fc(x.flatten(1))
'''


def test_a_failing_rank_is_named_with_its_runs_and_finished_runs_are_kept(data_dir, tmp_path):
    (tmp_path / "flaky.py").write_text(FLAKY_MODEL)
    runs = tmp_path / "runs"
    lrs = ["0.01", "0.02", "0.03", "0.04"]  # dealt 0.01, 0.03 to rank 0; 0.02, 0.04 to rank 1
    waits = os.pathsep.join(str(runs / "cmp" / f"{lr}-seed0" / "events.jsonl")
                            for lr in ("0.01", "0.03"))
    done = run_cli("compare", f"{tmp_path / 'flaky.py'}:Net", "--lr", ",".join(lrs),
                   "--data-dir", data_dir, "--runs-dir", str(runs), "--name", "cmp",
                   "--progress", "plain", "--optimizer", "sgd", *FLAGS, "--nproc", "2",
                   FAIL_ON_RANK="1", WAIT_FOR=waits)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "vizlab: error: rank 1 (0.02, 0.04) failed: RuntimeError: lost the GPU"
    assert done.stderr.count("Traceback") == 1 and "ChildFailedError" not in done.stderr
    assert processes_mentioning(str(runs)) == []  # nothing left running

    summary = json.loads((runs / "cmp" / "comparison.json").read_text())
    assert summary["status"] == "failed" and len(summary["members"]) == 4
    rows = {r["variant"]: r for r in summary["variants"]}
    for lr in ("0.01", "0.03"):  # rank 0's runs finished: complete, and in the ranking
        assert rows[lr]["status"] == "finished" and rows[lr]["final_acc"] is not None
        assert len(rows[lr]["runs"][0]["epochs"]) == 2
        assert kinds(runs / "cmp" / f"{lr}-seed0")[-1] == "run_ended"
    for lr in ("0.02", "0.04"):  # rank 1's runs ended honestly, in their logs and the file
        assert rows[lr]["status"] == "failed"
        ends = [e for e in read_events(runs / "cmp" / f"{lr}-seed0") if e.kind == "run_ended"]
        assert [e.status for e in ends] == ["failed"] and "lost the GPU" in ends[0].message


@pytest.mark.parametrize("target", ["launcher", "rank 1"])
def test_ctrl_c_stops_every_rank_at_a_step_with_checkpoints(data_dir, tmp_path, target):
    runs = tmp_path / "runs"
    proc = subprocess.Popen(command(
        "compare", "mlp", "--activation", "relu,tanh", "--data-dir", data_dir, "--runs-dir",
        str(runs), "--name", "cmp", "--no-visdom", "--progress", "off", "--epochs", "500",
        "--batch-size", "16", "--nproc", "2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env())
    logs = [runs / "cmp" / f"{a}-seed0" / "events.jsonl" for a in ("relu", "tanh")]
    deadline = time.monotonic() + 120
    while not all(p.exists() and "epoch_end" in p.read_text() for p in logs):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    # A terminal's Ctrl-C reaches the launcher, which passes it on to every rank; on several
    # nodes it may reach one rank only, which passes it on through the store.
    os.kill(proc.pid if target == "launcher" else lock_pid(logs[1].parent), signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "interrupted" in err and str(runs / "cmp") in err, err
    assert processes_mentioning(str(runs)) == []
    assert json.loads((runs / "cmp" / "comparison.json").read_text())["status"] == "interrupted"
    for log in logs:
        ends = [e for e in read_events(log.parent) if e.kind == "run_ended"]
        assert [e.status for e in ends] == ["interrupted"]
        state = json.loads((log.parent / "config.json").read_text())
        assert state["epochs"] == 500
        assert (log.parent / "checkpoint.pt").exists()
        assert ends[0].step > 0


# -- without processes ---------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (("--nproc", "5"), "--nproc 5 is more than the 4 runs to train"),
    (("--nproc", "0"), "--nproc must be positive"),
    (("--nproc", "2", "--device", "cuda:1"), "cannot be shared by several"),
])
def test_bad_input_fails_before_any_process_starts(capsys, data_dir, tmp_path, args, message):
    code, _, err = vizlab(capsys, "compare", "mlp", "--activation", ",".join(ACTS),
                          "--data-dir", data_dir, "--runs-dir", str(tmp_path / "runs"),
                          "--no-visdom", *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_comparing_existing_runs_is_not_spread_over_processes(capsys, tmp_path):
    code, _, err = vizlab(capsys, "compare", "runs/a", "runs/b", "--nproc", "2")
    assert code == 2 and err.count("\n") == 1 and "trains nothing" in err, err


def test_taken_comparison_name_fails_before_any_process_starts(capsys, data_dir, tmp_path):
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    code, _, err = vizlab(capsys, "compare", "mlp", "--activation", "relu,tanh", "--data-dir",
                          data_dir, "--runs-dir", str(tmp_path / "runs"), "--name", "taken",
                          "--nproc", "2")
    assert code == 2 and "exists" in err and err.count("\n") == 1, err


def test_deal_balances_cost_and_is_deterministic():
    assert deal([1, 1, 1, 1], 2) == [[0, 2], [1, 3]]
    assert deal([5, 1, 1, 1, 1, 1], 2) == [[0], [1, 2, 3, 4, 5]]
    assert deal([3, 3, 2, 2, 2], 2) == [[0, 2, 4], [1, 3]]  # LPT: 7 against 5
    assert deal([1, 2], 4) == [[1], [0], [], []]  # more ranks than runs: some idle
    costs = [float((i * 7919) % 13 + 1) for i in range(40)]
    shares = deal(costs, 3)
    assert sorted(i for s in shares for i in s) == list(range(40))  # every run exactly once
    loads = [sum(costs[i] for i in s) for s in shares]
    assert max(loads) - min(loads) <= max(costs)  # no rank ahead by more than one run
    assert deal(costs, 3) == shares


def test_run_cost_follows_compute_not_parameter_count(data_dir):
    mlp, cnn = forward_flops("mlp", "relu", None), forward_flops("cnn", "relu", None)
    assert cnn > 2 * mlp  # an eighth of the MLP's parameters, more than twice its FLOPs
    axes, rest = parse_axes({"model": "mlp,cnn,inception", "data_dir": data_dir, "epochs": 1})
    variants = expand(axes, rest)
    assert deal_variants(variants, 2) == [[2], [0, 1]]  # inception outweighs the other two
    assert share_label(variants, [0, 1]) == "mlp, cnn"


NEEDS_REAL_TENSORS = """
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        scale = float(x.abs().max().item()) or 1.0  # cannot run on the meta device
        return self.fc(x.flatten(1) / scale)
"""


def test_a_model_that_cannot_run_on_meta_is_costed_by_its_size(tmp_path):
    (tmp_path / "real.py").write_text(NEEDS_REAL_TENSORS)
    assert forward_flops(f"{tmp_path / 'real.py'}:Net", "relu", None) == 2.0 * (784 * 10 + 10)


def test_threads_of_a_rank():
    from vizlab.compare.ranks import rank_threads

    assert rank_threads(None, 2, cores=16) == 8  # the node's cores, shared by its ranks
    assert rank_threads(None, 4, cores=2) == 1
    assert rank_threads(3, 2, cores=16) == 3  # --threads wins


def test_a_rank_stopped_by_its_own_ctrl_c_is_interrupted_for_the_launcher(tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from vizlab.distributed.launcher import explain_failures

    stopped = ProcessFailure(local_rank=1, pid=7, exitcode=130, error_file=str(tmp_path / "no"))
    assert explain_failures({0: stopped, 1: stopped}).status == 130


# -- the relay, on a real store in this process -------------------------------------------------
@pytest.fixture
def store():
    from datetime import timedelta

    import torch.distributed as dist

    return dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                         timeout=timedelta(seconds=10))


def relays(store, world=3, clock=time.monotonic):
    from vizlab.compare.relay import Relay
    from vizlab.run.engine import StopFlag

    got: list = []
    ranks = [Relay(store, r, world, StopFlag(), timeout=30.0, clock=clock,
                   deliver=(lambda i, e: got.append((i, e))) if r == 0 else None)
             for r in range(world)]
    return ranks, got


def test_relay_carries_each_ranks_events_in_order_without_the_heavy_ones(store):
    from vizlab.events import Predictions, RunEnded, TrainSteps

    (zero, one, two), got = relays(store)
    steps = [TrainSteps(epoch=1, step=s, losses=(1.0 / s,), lrs=(0.1,)) for s in range(1, 5)]
    one.post(1, steps[0])
    one.post(1, Predictions(epoch=1, preds=(1,), confidences=(0.5,)))  # stays in the run log
    two.post(2, steps[1])
    one.tick()
    two.tick()
    one.post(1, steps[2])
    one.flush()
    zero.drain()
    assert got == [(1, steps[0]), (1, steps[2]), (2, steps[1])]  # rank by rank, in order
    assert not any(store.check([k]) for k in ("ev/1/0", "ev/1/1", "ev/2/0"))  # read: deleted
    ended = RunEnded(status="failed", epochs_done=0, step=3, message="boom")
    one.post(3, ended)  # an end goes out at once, without waiting for a tick
    one.flush(done=True, failure="RuntimeError: boom")
    two.flush(done=True)
    zero.wait_for_ranks()
    assert got[-1] == (3, ended)
    assert zero.done == {1, 2} and zero.failures == {1: "RuntimeError: boom"}
    store.set("ev/2/2", b"not json")  # a damaged batch is skipped, not fatal
    zero.drain()
    assert zero.skipped == 1


def test_a_stop_on_any_rank_reaches_every_rank_and_the_end_word_comes_back(store):
    (zero, one, two), _ = relays(store)
    two.stop.requested = True  # Ctrl-C on rank 2 alone
    two.tick()
    zero.tick()
    one.tick()
    assert zero.stop.requested and one.stop.requested
    zero.announce("interrupted", together=True)
    assert one.wait_end() == ("interrupted", True)


def test_waiting_for_a_rank_that_went_silent_gives_up_after_the_timeout(store):
    now = [0.0]

    def clock():
        now[0] += 7.0  # every look costs 7 s of (pretend) time
        return now[0]

    (zero, one, _), _ = relays(store, clock=clock)
    one.flush(done=True)  # rank 1 is done; rank 2 never says anything again
    with pytest.raises(RuntimeError, match="timed out waiting for rank 2: no word from it for 30"):
        zero.wait_for_ranks()
    with pytest.raises(RuntimeError, match="timed out waiting for rank 0"):
        one.wait_end()  # rank 0 silent too: rank 1 does not wait forever either
