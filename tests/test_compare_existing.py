"""`vizlab compare RUN ...`: existing runs overlaid and ranked without training, runs in progress
followed until they end, uncontrolled comparisons said so, bad input one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import vizlab
from idxdata import write_idx_dataset

from vizlab.report.runlog import read_events


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=192, n_test=64))


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    """Two finished runs, relu and tanh, and a third with fewer epochs."""
    from vizlab.cli import main

    root = tmp_path_factory.mktemp("runs")
    for name, activation, epochs in (("a", "relu", "2"), ("b", "tanh", "2"), ("c", "relu", "1")):
        try:
            main(["run", "mlp", "--activation", activation, "--data-dir", data_dir, "--epochs",
                  epochs, "--batch-size", "32", "--no-visdom", "--progress", "off",
                  "--runs-dir", str(root), "--name", name])
        except SystemExit as exc:
            assert not exc.code
    return root


def snapshot(run_dir: Path) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.iterdir()}


def test_two_earlier_runs_overlaid_and_ranked_without_training(capsys, runs, visdom_server):
    before = {d.name: snapshot(d) for d in runs.iterdir()}
    code, out, err = vizlab(capsys, "compare", str(runs / "a"), "b", "--runs-dir", str(runs),
                            "--name", "ab", "--visdom-url", visdom_server.url, "--progress",
                            "plain", "--target", "50")
    assert code == 0, err
    assert "comparing 2 existing runs (no training)" in out and "not controlled" not in out
    assert {d.name: snapshot(d) for d in runs.iterdir() if d.name != "ab"} == before
    assert sorted(p.name for p in (runs / "ab").iterdir()) == [".lock", "comparison.csv",
                                                              "comparison.json"]
    summary = json.loads((runs / "ab" / "comparison.json").read_text())
    assert summary["controlled"] is True and summary["differences"] == {}
    assert summary["axes"] == ["activation"] and summary["target"] == 50.0
    rows = {r["variant"]: r for r in summary["variants"]}
    assert set(rows) == {"a", "b"} and rows["a"]["axes"] == {"activation": "relu"}
    viz = visdom_server.client()

    def window(win):
        return json.loads(viz.get_window_data(win, env="ab"))["content"]

    for trace in window("cmp_test_acc")["data"]:  # each run's own epochs, from its log
        logged = [e.test_acc for e in read_events(runs / trace["name"]) if e.kind == "epoch_end"]
        assert trace["x"] == [1, 2] and trace["y"] == pytest.approx(logged)
        assert rows[trace["name"]]["final_acc"] == pytest.approx(logged[-1])
    assert [t["name"] for t in window("cmp_activations")["data"]] == ["relu", "relu'", "tanh",
                                                                      "tanh'"]
    assert "a" in window("cmp_summary") and "best" in window("cmp_summary")
    # The comparison replays, and `vizlab runs` lists it.
    code, out, err = vizlab(capsys, "replay", str(runs / "ab"), "--env", "ab-again",
                            "--visdom-url", visdom_server.url)
    assert code == 0, err
    assert json.loads(viz.get_window_data("cmp_test_acc", env="ab-again"))["content"] == \
        window("cmp_test_acc")


def test_differing_data_shaping_is_listed_and_not_controlled(capsys, runs):
    code, out, err = vizlab(capsys, "compare", "a", "c", "--runs-dir", str(runs), "--name", "ac",
                            "--no-visdom", "--progress", "plain")
    assert code == 0, err
    assert "not controlled: the runs differ in data shaping (epochs: 2, 1)" in out
    assert "NOT CONTROLLED" in out
    summary = json.loads((runs / "ac" / "comparison.json").read_text())
    assert summary["controlled"] is False and summary["differences"] == {"epochs": [2, 1]}


def test_a_comparison_dir_brings_its_variants_and_seeds(capsys, runs, data_dir):
    code, _, err = vizlab(capsys, "compare", "mlp", "--activation", "relu,tanh", "--repeats",
                          "2", "--data-dir", data_dir, "--epochs", "2", "--batch-size", "32",
                          "--no-visdom", "--progress", "off", "--runs-dir", str(runs),
                          "--name", "grid")
    assert code == 0, err
    code, out, err = vizlab(capsys, "compare", "grid", "a", "--runs-dir", str(runs), "--name",
                            "grid-a", "--no-visdom", "--progress", "plain")
    assert code == 0, err
    summary = json.loads((runs / "grid-a" / "comparison.json").read_text())
    assert [(m["variant"], m["seed"]) for m in summary["members"]] == [
        ("grid/relu", 0), ("grid/relu", 1), ("grid/tanh", 0), ("grid/tanh", 1), ("a", 0)]
    rows = {r["variant"]: r for r in summary["variants"]}
    assert rows["grid/relu"]["repeats"] == 2 and rows["a"]["repeats"] == 1
    # a ran seed 0 only, the grid's variants seeds 0 and 1: not the same seeds.
    assert summary["differences"] == {"seeds": ["grid/relu: 0,1", "grid/tanh: 0,1", "a: 0"]}


def test_a_run_killed_without_an_end_is_counted_unfinished(capsys, runs, tmp_path):
    dead = tmp_path / "dead"
    dead.mkdir()
    (dead / "config.json").write_text((runs / "b" / "config.json").read_text())
    lines = (runs / "b" / "events.jsonl").read_text().splitlines(keepends=True)
    (dead / "events.jsonl").write_text("".join(lines[:-1]))  # no run_ended
    old = time.time() - 3600
    os.utime(dead / "events.jsonl", (old, old))
    code, out, err = vizlab(capsys, "compare", str(runs / "a"), str(dead), "--runs-dir",
                            str(tmp_path), "--name", "withdead", "--no-visdom", "--progress",
                            "plain")
    assert code == 0, err
    assert "following" not in out and "counted as unfinished" in out
    rows = {r["variant"]: r for r in json.loads(
        (tmp_path / "withdead" / "comparison.json").read_text())["variants"]}
    assert rows["dead"]["status"] == "unfinished" and rows["dead"]["final_acc"] is not None


@pytest.mark.parametrize("args, message", [
    (("a", "b", "--lr", "0.1"), "--lr: training options do not apply to existing runs"),
    (("a", "b", "--repeats", "3"), "--repeats: training options do not apply"),
    (("a", "nosuch"), "no run directory 'nosuch'"),
    (("a",), "a comparison needs two or more runs"),
    (("a", "a"), "is named twice"),
    (("mlp", "cnn"), "no run directory 'mlp'"),
    (("a", "b", "--stale-after", "0"), "--stale-after must be positive"),
])
def test_bad_input_is_one_line_and_writes_nothing(capsys, runs, args, message):
    before = sorted(p.name for p in runs.iterdir())
    code, _, err = vizlab(capsys, "compare", *args, "--runs-dir", str(runs), "--no-visdom")
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in runs.iterdir()) == before


def wait_for(condition, what: str, timeout: float = 120.0):
    """Poll until ``condition()``; a generous limit only so a broken build cannot hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def epoch_ends(run_dir: Path) -> int:
    try:
        return sum(1 for e in read_events(run_dir) if e.kind == "epoch_end")
    except OSError:
        return 0


def test_a_run_in_progress_is_followed_until_it_ends(runs, tmp_path):
    # Epochs of 1,500 samples: long enough that the run is paused well before its end.
    data_dir = str(write_idx_dataset(tmp_path / "data", n_train=1500, n_test=64))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    live = tmp_path / "live"
    trainer = subprocess.Popen(
        [sys.executable, "-m", "vizlab", "run", "mlp", "--data-dir", data_dir, "--epochs", "10",
         "--batch-size", "32", "--no-visdom", "--progress", "off", "--runs-dir", str(tmp_path),
         "--name", "live", "--threads", "1"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    out = tmp_path / "compare.out"
    comparer = None
    try:
        wait_for(lambda: epoch_ends(live) >= 1, "the first epoch of the live run")
        trainer.send_signal(signal.SIGSTOP)  # hold it mid-run while the comparison starts
        at_pause = epoch_ends(live)
        assert at_pause < 10
        with open(out, "wb") as sink:
            comparer = subprocess.Popen(
                [sys.executable, "-m", "vizlab", "compare", str(runs / "a"), str(live),
                 "--runs-dir", str(tmp_path), "--name", "following", "--no-visdom",
                 "--progress", "plain"], env=env, stdout=sink, stderr=subprocess.STDOUT)
            wait_for(lambda: b"following 1 run(s) in progress" in out.read_bytes(),
                     "the comparison to follow the live run")
            assert comparer.poll() is None  # it waits for the run, which is paused
            trainer.send_signal(signal.SIGCONT)
            assert trainer.wait(120) == 0
            assert comparer.wait(120) == 0, out.read_text()
    finally:
        for proc in (trainer, comparer):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
    summary = json.loads((tmp_path / "following" / "comparison.json").read_text())
    rows = {r["variant"]: r for r in summary["variants"]}
    run = rows["live"]["runs"][0]
    assert run["status"] == "finished" and len(run["epochs"]) == 10 > at_pause
    logged = [e.test_acc for e in read_events(live) if e.kind == "epoch_end"]
    assert [e["test_acc"] for e in run["epochs"]] == pytest.approx(logged)
    assert "#1 " in out.read_text() and "#2 " in out.read_text()


def test_log_tail_reads_complete_lines_only(tmp_path):
    from vizlab.events import RunEnded
    from vizlab.report.follow import LogTail

    line = json.dumps(RunEnded(status="finished", epochs_done=1, step=6).to_dict()) + "\n"
    log = tmp_path / "events.jsonl"
    log.write_text("not json\n" + line[:20])
    tail = LogTail(tmp_path)
    assert tail.read() == [] and tail.ended is None  # a torn line waits for its end
    with open(log, "a") as f:
        f.write(line[20:])
    (event,) = tail.read()
    assert event.status == "finished" and tail.ended == event and tail.read() == []
