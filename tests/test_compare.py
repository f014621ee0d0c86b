"""`vizlab compare`: grids, fairness, summary files, bad axes, and the overlaid dashboard."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import vizlab
from idxdata import write_idx_dataset

from vizlab.compare.comparison import Comparison
from vizlab.compare.variants import expand, parse_axes
from vizlab.errors import VizlabError
from vizlab.run.engine import StopFlag


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=192, n_test=64))


def shared(data_dir, **extra):
    return dict(data_dir=data_dir, epochs=1, batch_size="32", visdom=False, progress="off",
                **extra)


def test_grid_of_two_axes_and_repeats(data_dir):
    axes, rest = parse_axes({"model": "mlp", "activation": "relu,tanh", "lr": "0.1,0.01",
                             **shared(data_dir)})
    variants = expand(axes, rest, repeats=2)
    assert len(variants) == 8
    assert {v.name for v in variants} == {f"activation={a} lr={lr}" for a in ("relu", "tanh")
                                          for lr in (0.1, 0.01)}
    assert sorted({v.cfg.seed for v in variants}) == [0, 1]
    assert {v.cfg.batch_size for v in variants} == {32}


def test_variants_see_identical_first_batches_and_weights(data_dir, tmp_path):
    axes, rest = parse_axes({"model": "mlp", "activation": "relu,tanh", **shared(data_dir)})
    comparison = Comparison(expand(axes, rest), tmp_path, "cmp")
    comparison.prepare()
    comparison.open(lambda entry, event: None, StopFlag())
    first_inputs = []
    for entry in comparison.entries:
        entry.engine.model.register_forward_pre_hook(
            lambda module, args: first_inputs.append(args[0].clone()) if module.training else None)
    a, b = (e.engine.model.state_dict() for e in comparison.entries)
    assert all(torch.equal(a[k], b[k]) for k in a)  # same architecture, same initial weights
    comparison.run()
    steps = len(first_inputs) // 2
    # Lockstep: relu's step i, then tanh's step i, on the very same batch.
    assert steps == 6
    for i in range(steps):
        assert torch.equal(first_inputs[2 * i], first_inputs[2 * i + 1])
    assert {e.ended.status for e in comparison.entries} == {"finished"}


def test_summary_files_and_ranking(capsys, data_dir, tmp_path):
    code, out, err = vizlab(capsys, "compare", "mlp", "--activation", "relu,sigmoid",
                            "--data-dir", data_dir, "--epochs", "2", "--batch-size", "32",
                            "--no-visdom", "--progress", "plain", "--runs-dir", str(tmp_path),
                            "--name", "cmp", "--repeats", "2")
    assert code == 0, err
    summary = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert [v["variant"] for v in summary["variants"]] == [
        r["variant"] for r in csv.DictReader(open(tmp_path / "cmp" / "comparison.csv"))]
    for v in summary["variants"]:
        assert v["repeats"] == 2 and len(v["runs"]) == 2
        accs = [r["final_acc"] for r in v["runs"]]
        assert v["final_acc"] == pytest.approx(sum(accs) / 2)
        for run in v["runs"]:
            assert (tmp_path / "cmp" / run["run_dir"].split("/")[-1] / "events.jsonl").exists()
    ranks = [v["final_acc"] for v in summary["variants"]]
    assert ranks == sorted(ranks, reverse=True)
    assert "#1 " in out and "#2 " in out
    code, out, err = vizlab(capsys, "runs", "--runs-dir", str(tmp_path))
    assert code == 0 and "compare: 4 x mlp" in out and "finished" in out, out + err


@pytest.mark.parametrize("args, message", [
    (("--activation", "relu,swish"), "unknown --activation 'swish'"),
    (("--lr", "0.1,fast"), "--lr: 'fast' is not a valid number"),
    (("--epochs", "1,2"), "cannot be a comparison axis"),
    (("--activation", "relu"), "nothing to compare"),
    (("--activation", "relu,tanh,elu,selu,gelu,silu", "--lr", "1,2,3,4,5,6"), "--max-variants 36"),
])
def test_bad_axis_is_one_line_exit_2(capsys, data_dir, tmp_path, args, message):
    code, _, err = vizlab(capsys, "compare", "mlp", "--data-dir", data_dir, "--no-visdom",
                          "--runs-dir", str(tmp_path / "runs"), *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_bad_value_raises_before_anything_is_written(data_dir):
    axes, rest = parse_axes({"model": "mlp,nosuch", **shared(data_dir)})
    with pytest.raises(VizlabError, match="unknown model 'nosuch'"):
        expand(axes, rest)


def test_overlaid_dashboard_on_a_real_server_and_its_replay(capsys, data_dir, tmp_path,
                                                            visdom_server):
    code, out, err = vizlab(capsys, "compare", "mlp", "--activation", "relu,tanh", "--data-dir",
                            data_dir, "--epochs", "2", "--batch-size", "32", "--progress",
                            "plain", "--runs-dir", str(tmp_path), "--name", "cmpviz",
                            "--visdom-url", visdom_server.url)
    assert code == 0, err
    viz = visdom_server.client()
    summary = json.loads((tmp_path / "cmpviz" / "comparison.json").read_text())
    by_name = {v["variant"]: v for v in summary["variants"]}

    def window(win, env="cmpviz"):
        return json.loads(viz.get_window_data(win, env=env))["content"]

    for win in ("cmp_train_loss", "cmp_test_acc", "cmp_test_loss"):
        assert [t["name"] for t in window(win)["data"]] == ["relu", "tanh"], win
    for trace in window("cmp_test_acc")["data"]:
        expected = [e["test_acc"] for e in by_name[trace["name"]]["runs"][0]["epochs"]]
        assert trace["x"] == [1, 2] and trace["y"] == pytest.approx(expected)
    steps = window("cmp_train_loss")["data"][0]["x"]
    assert steps == list(range(1, 2 * 6 + 1))  # every step of both epochs, once
    curves = window("cmp_activations")["data"]
    assert [t["name"] for t in curves] == ["relu", "relu'", "tanh", "tanh'"]
    ranking = window("cmp_summary")
    assert "relu" in json.dumps(ranking) and "tanh" in json.dumps(ranking)

    code, out, err = vizlab(capsys, "replay", str(tmp_path / "cmpviz"), "--env", "cmpviz-again",
                            "--visdom-url", visdom_server.url)
    assert code == 0, err
    for win in ("cmp_train_loss", "cmp_test_acc", "cmp_test_loss", "cmp_activations",
                "cmp_summary"):
        assert window(win, "cmpviz-again") == window(win), win
