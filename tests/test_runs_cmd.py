"""`vizlab runs` lists run dirs; `vizlab runs rm` deletes them and their Visdom envs."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner
from conftest import env_list, free_port, vizlab
from runlogs import run_events, write_run

from vizlab.cli import cli, main
from vizlab.report.replay import replay


def make_runs(runs_dir):
    config = {"model": "mlp", "dataset": "mnist", "runs_dir": str(runs_dir)}
    write_run(runs_dir / "done", run_events("done", epochs=2, steps_per_epoch=30),
              {**config, "name": "done"})
    failed = run_events("bad", epochs=2, steps_per_epoch=30, status="failed", model="cnn")
    write_run(runs_dir / "bad", failed, {**config, "name": "bad", "model": "cnn"})
    killed = run_events("killed", epochs=3, steps_per_epoch=30, status="")[:-6]
    path = write_run(runs_dir / "killed", killed, {**config, "name": "killed", "env": "k-env"})
    with open(path, "a") as f:
        f.write('{"event":"epoch_end","epoch":2,"st')  # torn last line
    (runs_dir / "not-a-run").mkdir()
    return [e for e in run_events("done", epochs=2, steps_per_epoch=30) if e.kind == "epoch_end"]


def test_runs_lists_name_model_dataset_status_best_accuracy_date(tmp_path):
    epochs = make_runs(tmp_path)
    result = CliRunner().invoke(cli, ["runs", "--runs-dir", str(tmp_path)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.output.splitlines()[1:] if line.strip()}
    assert set(lines) == {"name", "done", "bad", "killed"}
    assert lines["name"] == ["name", "model", "dataset", "status", "best", "acc", "epochs", "date"]
    assert lines["done"][:6] == ["done", "mlp", "mnist", "finished",
                                 f"{max(e.best_acc for e in epochs):.2f}%", "2/2"]
    assert lines["done"][6:] == ["2024-05-01", "12:00"]
    assert lines["bad"][1:4] == ["cnn", "mnist", "failed"]
    assert lines["killed"][3] == "unfinished" and lines["killed"][5] == "1/3"


def test_runs_in_an_empty_or_missing_dir(tmp_path):
    result = CliRunner().invoke(cli, ["runs", "--runs-dir", str(tmp_path / "none")])
    assert result.exit_code == 0 and "no runs in" in result.output


def test_runs_rm_deletes_run_dirs_and_their_envs(tmp_path, visdom_server):
    make_runs(tmp_path)
    replay(tmp_path / "done", visdom_server.url)
    replay(tmp_path / "killed", visdom_server.url)
    client = visdom_server.client()
    assert {"done", "k-env"} <= set(env_list(client))
    result = CliRunner().invoke(cli, ["runs", "rm", "done", "killed", "bad", "--runs-dir",
                                      str(tmp_path), "--visdom-url", visdom_server.url])
    assert result.exit_code == 0, result.output
    assert "and its Visdom env k-env" in result.output
    assert not (tmp_path / "done").exists() and not (tmp_path / "killed").exists()
    assert not (tmp_path / "bad").exists() and (tmp_path / "not-a-run").exists()
    assert not {"done", "k-env"} & set(env_list(client))


def test_runs_rm_checks_every_name_first(tmp_path, capsys):
    make_runs(tmp_path)
    for bad in ("nope", "../done", "not-a-run"):
        with pytest.raises(SystemExit) as exit_info:
            main(["runs", "--runs-dir", str(tmp_path), "rm", "done", bad])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert (tmp_path / "done").exists()  # nothing deleted when any name is wrong


def test_runs_rm_without_a_server_deletes_the_dirs_and_warns(tmp_path, capsys):
    make_runs(tmp_path)
    main(["runs", "rm", "done", "--runs-dir", str(tmp_path),
          "--visdom-url", f"http://127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "did not delete env(s) done" in err[0]
    assert not (tmp_path / "done").exists()


def test_runs_rm_of_a_copied_run_keeps_the_original_runs_env(tmp_path, visdom_server):
    import shutil

    make_runs(tmp_path / "mine")
    replay(tmp_path / "mine" / "killed", visdom_server.url)  # into its own env, k-env
    shutil.copytree(tmp_path / "mine", tmp_path / "copy")
    result = CliRunner().invoke(cli, ["runs", "rm", "killed", "--runs-dir", str(tmp_path / "copy"),
                                      "--visdom-url", visdom_server.url])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "copy" / "killed").exists() and (tmp_path / "mine" / "killed").exists()
    assert "Visdom env" not in result.output
    assert "k-env" in env_list(visdom_server.client())  # the original run's dashboard stays


def test_runs_rm_refuses_a_run_that_is_training(capsys, tmp_path):
    from vizlab.run.rundir import RunDir

    make_runs(tmp_path)
    with RunDir(tmp_path / "done"):  # as a training run holds it
        code, out, err = vizlab(capsys, "runs", "rm", "bad", "done", "--runs-dir", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert "in use by process" in err and str(os.getpid()) in err
    assert (tmp_path / "done").is_dir() and (tmp_path / "bad").is_dir()  # nothing deleted


def test_runs_rm_refuses_names_outside_the_runs_dir(capsys, tmp_path):
    make_runs(tmp_path / "runs")
    for name in ("../runs/done", "/tmp", "..", "done/../bad"):
        code, out, err = vizlab(capsys, "runs", "rm", name, "--runs-dir", str(tmp_path / "runs"))
        assert code == 2 and "not a run name" in err, name
    assert (tmp_path / "runs" / "done").is_dir()
