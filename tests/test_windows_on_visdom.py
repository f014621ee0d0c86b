"""What `vizlab run`, `vizlab replay` and `vizlab compare` draw, read back from the real server of
whichever Visdom is installed (0.2.4 on Python 3.11, 0.3.x on 3.12+): the same window ids, types
and point counts on every line, each count following from the run's settings.

CI runs this file on both lines, so the two dashboards are held to one expectation.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from idxdata import write_idx_dataset

from vizlab.report import visdom_client as vc
from vizlab.report.control_pane import control_win
from vizlab.server import visdom_compat

N_TRAIN, N_TEST, BATCH, EPOCHS = 192, 64, 32, 2
STEPS = EPOCHS * math.ceil(N_TRAIN / BATCH)
CLASSES = 10


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=N_TRAIN, n_test=N_TEST))


def vizlab(*args: str) -> None:
    out = subprocess.run([sys.executable, "-m", "vizlab", *args], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr, out.stderr


def signature(url: str, env: str) -> dict:
    """{window id: (type, title, [(trace name, trace type, points), ...])}, from the server; the
    control pane (its id differs per env) as "control"."""
    windows = vc.window_data(vc.connect(url, env), env)
    sig = {}
    for win, w in windows.items():
        win = "control" if win == control_win(env) else win
        content = w["content"]
        traces = []
        if w["type"] == "plot":
            traces = [(t.get("name"), t.get("type"), len(t.get("y") or [])) for t in content["data"]]
        sig[win] = (w["type"], w["title"], traces)
    return sig


def test_a_run_and_its_replay_draw_the_same_windows_on_this_visdom(visdom_server, data_dir,
                                                                    tmp_path):
    visdom_compat.installed_line()  # a supported Visdom: else this says which one is installed
    vizlab("run", "mlp", "--data-dir", data_dir, "--epochs", str(EPOCHS), "--batch-size",
           str(BATCH), "--viz-histograms", "--runs-dir", str(tmp_path), "--name", "sig",
           "--visdom-url", visdom_server.url, "--progress", "plain")
    live = signature(visdom_server.url, "sig")
    kinds = {win: kind for win, (kind, _, _) in live.items()}
    assert kinds == {"train_loss": "plot", "lr": "plot", "test_loss": "plot", "test_acc": "plot",
                     "per_class": "plot", "confusion": "plot", "weights": "plot",
                     "gradients": "plot", "samples": "text", "predictions": "text",
                     "misclassified": "text", "run_card": "text", "control": "properties"}
    points = {win: [(name, n) for name, _, n in traces] for win, (_, _, traces) in live.items()}
    assert points["train_loss"] == [("loss", STEPS), ("smoothed", STEPS)]
    assert points["lr"] == [("learning rate", STEPS)]
    assert points["test_acc"] == [("test", EPOCHS)]
    assert points["test_loss"] == [("test", EPOCHS), ("train (epoch mean)", EPOCHS)]
    assert points["per_class"] == [(f"epoch {e}", CLASSES) for e in range(1, EPOCHS + 1)]
    assert points["confusion"] == [("count", CLASSES)]
    assert live["confusion"][2][0][1] == "heatmap"
    for win in ("weights", "gradients"):  # one trace per layer, each a histogram
        assert points[win] and all(n > 0 for _, n in points[win]), win

    vizlab("replay", str(tmp_path / "sig"), "--env", "sig-replayed",
           "--visdom-url", visdom_server.url)
    assert signature(visdom_server.url, "sig-replayed") == live


def test_a_comparison_and_its_replay_draw_the_same_windows_on_this_visdom(visdom_server,
                                                                          data_dir, tmp_path):
    vizlab("compare", "mlp", "--activation", "relu,tanh", "--data-dir", data_dir, "--epochs",
           str(EPOCHS), "--batch-size", str(BATCH), "--runs-dir", str(tmp_path), "--name",
           "a-rather-long-comparison-name", "--visdom-url", visdom_server.url,
           "--progress", "plain")
    env = "a-rather-long-comparison-name"
    live = signature(visdom_server.url, env)
    assert {win: (kind, title) for win, (kind, title, _) in live.items()} == {
        "cmp_train_loss": ("plot", "train loss (smoothed)"),
        "cmp_test_acc": ("plot", "test accuracy"),
        "cmp_test_loss": ("plot", "test loss (mean per sample)"),
        "cmp_activations": ("plot", "activations (solid) and the gradients training uses (dotted)"),
        "cmp_summary": ("text", "ranking"),
        "control": ("properties", "control (read-only)"),  # the pane to drop variants with
    }  # short titles: the env already names the comparison
    points = {win: [(name, n) for name, _, n in traces] for win, (_, _, traces) in live.items()}
    assert points["cmp_train_loss"] == [("relu", STEPS), ("tanh", STEPS)]
    assert points["cmp_test_acc"] == [("relu", EPOCHS), ("tanh", EPOCHS)]
    assert points["cmp_test_loss"] == [("relu", EPOCHS), ("tanh", EPOCHS)]
    assert [name for name, _ in points["cmp_activations"]] == ["relu", "relu'", "tanh", "tanh'"]

    vizlab("replay", str(tmp_path / env), "--env", env + "-replayed",
           "--visdom-url", visdom_server.url)
    assert signature(visdom_server.url, env + "-replayed") == live
