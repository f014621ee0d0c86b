"""Replay: a run log redrawn into a fresh env equals the live dashboard, window for window."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import free_port, wait_for
from runlogs import open_run_log, run_events, write_run

from vizlab.cli import cli, main
from vizlab.report.replay import replay
from vizlab.report.visdom_sink import VisdomSink

VOLATILE = ("contentID", "i")  # a random id per update, and the window's creation rank


def env_windows(server, env) -> dict:
    data = json.loads(server.client().get_window_data(None, env))
    return {win: {k: v for k, v in w.items() if k not in VOLATILE} for win, w in data.items()}


def live_run(server, run_dir, env, events):
    """A run streamed live, waiting for a flush every few events: the live env is built by
    many flushes as the run goes, as in a real run."""
    log = open_run_log(run_dir, {"name": run_dir.name, "model": "mlp", "dataset": "mnist"})
    sink = VisdomSink(server.url, env, log_path=log.path, flush_log=log.flush,
                      flush_interval=0.1, heavy_interval=0.3, flush_budget=1.0)
    flushed = 0
    for i, event in enumerate(events, 1):
        log.handle(event)
        sink.handle(event)
        if i % 3 == 0:
            assert wait_for(lambda n=flushed: sink.stats["flushes"] > n)
            flushed = sink.stats["flushes"]
    sink.close()
    log.close()
    return sink


@pytest.mark.parametrize("steps_per_epoch", [150, 1667], ids=["short", "coarsened"])
def test_replay_into_a_fresh_env_equals_the_live_env(visdom_server, tmp_path, steps_per_epoch):
    events = run_events("r", epochs=3, steps_per_epoch=steps_per_epoch, chunk=64,
                        histograms=True, val=True)
    env = f"r-live-{steps_per_epoch}"
    sink = live_run(visdom_server, tmp_path / "r", env, events)
    assert sink.stats["flushes"] > 5 and sink.stats["redraws"] == 1  # drawn as it went
    result = replay(tmp_path / "r", visdom_server.url, env=env + "-replay")
    assert result.events == len(events)
    live, replayed = env_windows(visdom_server, env), env_windows(visdom_server, env + "-replay")
    assert set(live) == set(replayed) == set(result.windows)
    for win in live:
        assert live[win] == replayed[win], win
    raw = live["train_loss"]["content"]["data"][0]
    assert len(raw["x"]) == (450 if steps_per_epoch == 150 else 1251)


def test_replay_replaces_windows_and_closes_stale_ones(visdom_server, tmp_path):
    write_run(tmp_path / "a", run_events("a", epochs=2, steps_per_epoch=50, histograms=True))
    write_run(tmp_path / "b", run_events("b", epochs=2, steps_per_epoch=80, seed=3))
    replay(tmp_path / "a", visdom_server.url, env="r-stale")
    assert "weights" in env_windows(visdom_server, "r-stale")
    replay(tmp_path / "b", visdom_server.url, env="r-stale")
    replay(tmp_path / "b", visdom_server.url, env="r-stale")  # twice: still the same windows
    replay(tmp_path / "b", visdom_server.url, env="r-fresh")
    assert env_windows(visdom_server, "r-stale") == env_windows(visdom_server, "r-fresh")
    assert "weights" not in env_windows(visdom_server, "r-stale")


def test_replay_tolerates_a_killed_run(visdom_server, tmp_path):
    events = run_events("k", epochs=2, steps_per_epoch=60, status="")
    path = write_run(tmp_path / "k", events)
    with open(path, "a") as f:
        f.write('{"event":"train_steps","epoch":3,"step":121,"loss')  # torn last line
    replay(tmp_path / "k", visdom_server.url, env="r-killed")
    win = env_windows(visdom_server, "r-killed")
    assert win["train_loss"]["content"]["data"][0]["x"][-1] == 120.0
    assert ">unfinished<" in win["run_card"]["content"]  # no RunEnded in the log


def test_replay_command(visdom_server, tmp_path):
    runs_dir = tmp_path / "runs"
    write_run(runs_dir / "cli-run", run_events("cli-run", epochs=1, steps_per_epoch=40),
              {"name": "cli-run", "env": "cli-env", "model": "mlp", "dataset": "mnist"})
    result = CliRunner().invoke(cli, ["replay", str(runs_dir / "cli-run"),
                                      "--visdom-url", visdom_server.url])
    assert result.exit_code == 0, result.output
    assert "into" in result.output and "/env/cli-env" in result.output  # the run's own env
    result = CliRunner().invoke(cli, ["replay", "cli-run", "--runs-dir", str(runs_dir),
                                      "--env", "cli-other", "--visdom-url", visdom_server.url])
    assert result.exit_code == 0, result.output
    assert env_windows(visdom_server, "cli-env") == env_windows(visdom_server, "cli-other")


def run_main(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err


def test_replay_errors_are_one_line(tmp_path, capsys, visdom_server):
    code, err = run_main(["replay", str(tmp_path / "nope")], capsys)
    assert code == 2 and err.count("\n") == 1 and "no run directory" in err
    (tmp_path / "empty").mkdir()
    code, err = run_main(["replay", str(tmp_path / "empty"), "--visdom-url", visdom_server.url],
                         capsys)
    assert code == 2 and err.count("\n") == 1 and "no run log" in err
    write_run(tmp_path / "ok", run_events("ok", epochs=1, steps_per_epoch=20))
    code, err = run_main(["replay", str(tmp_path / "ok"), "--visdom-url",
                          f"http://127.0.0.1:{free_port()}"], capsys)
    assert code == 2 and err.count("\n") == 1 and "not reachable" in err
    code, err = run_main(["replay", str(tmp_path / "ok"), "--visdom-url", "http://x:y"], capsys)
    assert code == 2 and "bad Visdom URL" in err
