"""`vizlab compare`: grids, fairness, summary files, bad axes, and the overlaid dashboard."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser

import pytest
import torch
from conftest import vizlab
from idxdata import write_idx_dataset

from vizlab.compare.comparison import Comparison
from vizlab.compare.variants import expand, parse_axes
from vizlab.errors import VizlabError
from vizlab.events import EpochEnd, TrainSteps
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
    assert not viz.win_exists("cmp_parcoords", env="cmpviz")  # one axis: no parallel coordinates

    code, out, err = vizlab(capsys, "replay", str(tmp_path / "cmpviz"), "--env", "cmpviz-again",
                            "--visdom-url", visdom_server.url)
    assert code == 0, err
    for win in ("cmp_train_loss", "cmp_test_acc", "cmp_test_loss", "cmp_activations",
                "cmp_summary"):
        assert window(win, "cmpviz-again") == window(win), win


class _Cells(HTMLParser):
    """The rows of an HTML table: (style of the <tr>, [cell texts])."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append((dict(attrs).get("style", ""), []))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell))
            self._cell = None


def test_files_and_dashboard_ranking_agree(capsys, data_dir, tmp_path, visdom_server):
    code, out, err = vizlab(capsys, "compare", "mlp", "--activation", "relu,sigmoid,tanh",
                            "--data-dir", data_dir, "--epochs", "2", "--batch-size", "32",
                            "--repeats", "3", "--progress", "plain", "--runs-dir", str(tmp_path),
                            "--name", "cmpstats", "--visdom-url", visdom_server.url)
    assert code == 0, err
    summary = json.loads((tmp_path / "cmpstats" / "comparison.json").read_text())
    rows = summary["variants"]
    csv_rows = list(csv.DictReader(open(tmp_path / "cmpstats" / "comparison.csv")))
    viz = visdom_server.client()
    pane = json.loads(viz.get_window_data("cmp_summary", env="cmpstats"))["content"]
    parser = _Cells()
    parser.feed(pane)  # a text window's content is its HTML
    (_, header), *table = parser.rows
    assert header[2] == "final acc. ± 95% CI" and header[4] == "vs best (Holm p)"
    assert [cells[1] for _, cells in table] == [r["variant"] for r in rows] == \
        [r["variant"] for r in csv_rows]
    for (style, cells), row, line in zip(table, rows, csv_rows):
        finals = [run["final_acc"] for run in row["runs"]]
        mean = sum(finals) / 3
        sd = (sum((f - mean) ** 2 for f in finals) / 2) ** 0.5
        half = 4.302652729749462 * sd / 3 ** 0.5  # t(0.975, 2): recomputed from the runs
        assert row["final_acc"] == pytest.approx(mean)
        assert row["final_acc_ci"] == pytest.approx([mean - half, mean + half])
        assert float(line["final_acc_ci_low"]) == pytest.approx(mean - half)
        assert cells[2] == f"{mean:.2f}% ± {half:.2f}"
        assert cells[4].split(" ")[0] == row["verdict"] == line["verdict"]
        if row["vs_best"] is not None:
            assert float(line["p_holm"]) == pytest.approx(row["vs_best"]["p_holm"])
            assert cells[4].endswith(f"({row['vs_best']['p_holm']:.2g})") or \
                row["vs_best"]["p_holm"] < 0.001
        assert ("#e6f4ea" in style) == (row["verdict"] in ("best", "tied"))
        ttt = row["time_to_target"]
        assert cells[5] == "not reached" if ttt["reached"] == 0 else \
            cells[5].startswith(f"{ttt['epochs']:.3g} ep · {ttt['steps']:.0f} steps")
        assert line["target_reached"] == f"{ttt['reached']}/3"
    assert rows[0]["verdict"] == "best" and summary["target"] == 97.0
    assert summary["statistics"]["alpha"] == 0.05

    # Bands: per variant a shaded 95% band, its three seeds faint, and the mean on top.
    acc = json.loads(viz.get_window_data("cmp_test_acc", env="cmpstats"))["content"]["data"]
    for row in rows:
        mine = [t for t in acc if t.get("legendgroup") == row["variant"]]
        band, *seeds, mean = mine
        assert band["fill"] == "toself" and band["mode"] == "none"
        assert band["fillcolor"].startswith("rgba(")
        assert [t["name"] for t in seeds] == [f"{row['variant']} seed {s}" for s in (0, 1, 2)]
        assert all(t["line"]["color"].startswith("rgba(") for t in seeds)
        assert mean["name"] == row["variant"] and mean["x"] == [1, 2]
        for i in range(2):  # epochs 1 and 2
            values = [run["epochs"][i]["test_acc"] for run in row["runs"]]
            m = sum(values) / 3
            half = 4.302652729749462 * (sum((v - m) ** 2 for v in values) / 2) ** 0.5 / 3 ** 0.5
            assert mean["y"][i] == pytest.approx(m)
            assert [seed["y"][i] for seed in seeds] == pytest.approx(values)
            # The polygon runs along the upper edge, then back along the lower one (within 0-100).
            assert band["y"][i] == pytest.approx(min(100.0, m + half))
            assert band["y"][3 - i] == pytest.approx(max(0.0, m - half))
    loss = json.loads(viz.get_window_data("cmp_train_loss", env="cmpstats"))["content"]["data"]
    assert sum(1 for t in loss if t.get("fill") == "toself") == 3
    assert [t["name"] for t in loss if t.get("showlegend", True)] == ["relu", "sigmoid", "tanh"]


def test_activation_pane_shows_the_gradient_training_uses():
    from vizlab.report.activation_pane import activation_packet

    packet = activation_packet(["binary", "prelu", "mish"], ["#000", "#111"])
    names = [t["name"] for t in packet["data"]]
    assert names == ["binary", "binary' (straight-through)", "prelu (slope 0.25 at start)",
                     "prelu'", "mish", "mish'"]
    step, grad = packet["data"][0], packet["data"][1]
    xs = step["x"]

    def at(x):  # the grid index nearest to x
        return min(range(len(xs)), key=lambda k: abs(xs[k] - x))

    assert (step["y"][at(-2.0)], step["y"][at(-0.1)], step["y"][at(0.1)], step["y"][at(2.0)]) == \
        (0.0, 0.0, 1.0, 1.0)
    # The straight-through gradient, not the step's zero derivative: 1 on [-1, 1], else 0.
    assert (grad["y"][at(-2.0)], grad["y"][at(-0.5)], grad["y"][at(0.5)], grad["y"][at(2.0)]) == \
        (0.0, 1.0, 1.0, 0.0)
    prelu = packet["data"][2]
    assert prelu["y"][at(-2.0)] == pytest.approx(-0.5)


def test_time_to_target_in_files_and_ranking(capsys, data_dir, tmp_path):
    code, out, err = vizlab(capsys, "compare", "mlp", "--activation", "relu,sigmoid",
                            "--data-dir", data_dir, "--epochs", "3", "--batch-size", "32",
                            "--no-visdom", "--progress", "plain", "--runs-dir", str(tmp_path),
                            "--name", "cmpt", "--target", "60", "--repeats", "2")
    assert code == 0, err
    summary = json.loads((tmp_path / "cmpt" / "comparison.json").read_text())
    assert summary["target"] == 60.0
    lines = {r["variant"]: r for r in csv.DictReader(open(tmp_path / "cmpt" / "comparison.csv"))}
    for row in summary["variants"]:
        reached = []
        for run in row["runs"]:  # recomputed from the per-epoch numbers the file keeps
            seconds, expected = 0.0, None
            for e in run["epochs"]:
                seconds += e["time"]
                if e["test_acc"] >= 60.0:
                    expected = {"epoch": e["epoch"], "step": e["step"], "seconds": seconds}
                    break
            assert run["time_to_target"] == (pytest.approx(expected) if expected else None)
            reached.append(expected)
        ttt, hit = row["time_to_target"], [r for r in reached if r]
        assert (ttt["reached"], ttt["of"]) == (len(hit), 2)
        assert lines[row["variant"]]["target_reached"] == f"{len(hit)}/2"
        if hit:
            assert ttt["steps"] == pytest.approx(sum(r["step"] for r in hit) / len(hit))
            assert float(lines[row["variant"]]["target_epochs"]) == pytest.approx(ttt["epochs"])
    assert "to 60% " in out


@pytest.mark.parametrize("value", ["0", "100.5", "-3"])
def test_bad_target_is_one_line(capsys, data_dir, tmp_path, value):
    code, _, err = vizlab(capsys, "compare", "mlp", "--activation", "relu,tanh", "--target",
                          value, "--data-dir", data_dir, "--no-visdom",
                          "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and err.count("\n") == 1 and "--target" in err, err
    assert not (tmp_path / "runs").exists()


def test_bands_grow_live_as_seeds_finish_epochs():
    from vizlab.report.compare_board import CompareDashboard, VariantEvent

    board = CompareDashboard([("relu", 0), ("relu", 1), ("tanh", 0), ("tanh", 1)])

    def end(epoch, acc):
        return EpochEnd(epoch=epoch, step=10 * epoch, train_loss=0.1, test_loss=0.2,
                        test_acc=acc, per_class_acc=(), confusion=(), epoch_time=1.0,
                        samples_per_s=1.0, lr=0.1, best_acc=acc, is_best=True)

    assert board.apply(VariantEvent("relu", 0, end(1, 90.0))) == {"cmp_test_acc", "cmp_test_loss"}
    traces = board.pane("cmp_test_acc").packet["data"]
    assert [t["name"] for t in traces] == ["relu seed 0", "relu"]  # one seed so far: no band
    board.apply(VariantEvent("relu", 1, end(1, 94.0)))
    band, *_, mean = board.pane("cmp_test_acc").packet["data"]
    assert mean["y"] == [92.0] and band["fill"] == "toself"
    half = 12.706204736174694 * 2.0  # t(0.975, 1) * sd / sqrt(2), sd = 2 * sqrt(2)
    assert band["y"] == pytest.approx([100.0, 92.0 - half])  # an accuracy band stops at 100
    board.apply(VariantEvent("relu", 0, TrainSteps(epoch=1, step=1, losses=(2.0, 1.0),
                                                   lrs=(0.1, 0.1))))
    assert [t["name"] for t in board.pane("cmp_train_loss").packet["data"]] == ["relu seed 0",
                                                                                "relu"]


def test_parcoords_packet_categories_log_scale_and_not_reached():
    from vizlab.report.parcoords import parcoords_packet

    def row(act, lr, acc, seconds):
        return {"variant": f"{act} {lr}", "axes": {"activation": act, "lr": lr}, "final_acc": acc,
                "time_to_target": {"seconds": seconds}}

    rows = [row("relu", 0.1, 97.5, 3.0), row("tanh", 0.1, 96.0, None),
            row("relu", 0.001, 95.0, 8.0), row("tanh", 0.001, 94.0, None)]
    (trace,) = parcoords_packet("g", rows, 97.0)["data"]
    act, lr, acc, ttt = trace["dimensions"]
    assert trace["type"] == "parcoords" and trace["line"]["color"] == [97.5, 96.0, 95.0, 94.0]
    assert act["label"] == "activation" and act["values"] == [0, 1, 0, 1]
    assert act["ticktext"] == ["relu", "tanh"]
    assert lr["values"] == pytest.approx([-1, -1, -3, -3]) and lr["ticktext"] == ["0.001", "0.1"]
    assert acc["values"] == [97.5, 96.0, 95.0, 94.0]
    assert ttt["label"] == "s to 97%" and ttt["values"] == [3.0, 10.0, 8.0, 10.0]
    assert ttt["ticktext"] == ["0", "4", "8", "not reached"] and ttt["tickvals"][-1] == 10.0
    assert parcoords_packet("g", [{**r, "axes": {"lr": r["axes"]["lr"]}} for r in rows],
                            97.0) is None  # one axis: no pane


def test_grid_of_two_axes_gets_a_parcoords_pane(capsys, data_dir, tmp_path, visdom_server):
    code, out, err = vizlab(capsys, "compare", "mlp", "--activation", "relu,tanh", "--lr",
                            "0.01,0.001", "--data-dir", data_dir, "--epochs", "1",
                            "--batch-size", "32", "--progress", "off", "--runs-dir",
                            str(tmp_path), "--name", "grid2", "--visdom-url", visdom_server.url)
    assert code == 0, err
    rows = json.loads((tmp_path / "grid2" / "comparison.json").read_text())["variants"]
    viz = visdom_server.client()
    (trace,) = json.loads(viz.get_window_data("cmp_parcoords", env="grid2"))["content"]["data"]
    labels = [d["label"] for d in trace["dimensions"]]
    assert labels == ["activation", "lr", "final acc. (%)", "s to 97%"]
    assert trace["dimensions"][2]["values"] == pytest.approx([r["final_acc"] for r in rows])
    acts = trace["dimensions"][0]
    assert [acts["ticktext"][v] for v in acts["values"]] == [r["axes"]["activation"]
                                                             for r in rows]
