"""Dropping a variant from a running comparison: the pane's rules, `vizlab control COMPARISON
drop VARIANT` against a real `vizlab compare` process (one process, and two under --nproc)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import vizlab, wait_until
from idxdata import write_idx_dataset
from runlogs import run_events
from test_control_door import log_records

from vizlab.events import Control, RunEnded
from vizlab.report.compare_control_pane import CompareControlState, command_from_update
from vizlab.report.control_pane import control_win
from vizlab.run_files import COMPARISON_JSON, CONTROL_DIR

NAMES = ("activation=relu lr=0.1", "tanh")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=325, n_test=101))


def press(row, name=None, kind="button", env="cmp", win="w", names=NAMES):
    content = [{"name": "comparison", "type": "text", "value": "training"}] + [
        {"name": n, "type": "button", "value": "Drop"} for n in names]
    if name is not None:
        content[row] = {"name": name, "type": kind, "value": "Drop"}
    message = {"event_type": "PropertyUpdate", "eid": env, "target": win, "propertyId": row,
               "value": "clicked", "pane_data": {"content": content}}
    return command_from_update(message, "cmp", "w", names)


def test_the_pane_acts_only_on_a_drop_button_of_a_known_variant():
    drop = press(1)
    assert (drop.action, drop.variant, drop.text, drop.source) == \
        ("drop", NAMES[0], f"drop {NAMES[0]}", "dashboard")  # a name with a space is whole
    assert press(2).variant == "tanh"
    assert press(0) is None  # the header row only shows state
    assert press(3) is None  # past the variants: the last-command row
    assert press(1, name="selu") is None  # the page named a variant the comparison lacks
    assert press(2, name="tanh", kind="text") is None  # an ended variant's row shows state
    assert press(1, env="other") is None and press(1, win="x") is None
    assert press(True) is None


def test_the_pane_shows_each_variant_live_then_how_it_ended():
    state = CompareControlState(NAMES, {NAMES[0]: [0, 1], "tanh": [0]})
    for name, seed in ((NAMES[0], 0), (NAMES[0], 1), ("tanh", 0)):
        state.apply(name, seed, run_events(name, epochs=1)[0])
    rows = lambda closed=None: {r["name"]: (r["type"], r["value"].strip())
                                for r in state.packet(closed)["data"][0]["content"]}
    assert rows()["tanh"] == ("button", "Drop") and rows()["comparison"][1].startswith(
        "training: 2 of 2")
    state.apply("tanh", 0, Control(action="stop", accepted=True, step=7, epoch=1,
                                   command="drop tanh", variant="tanh", new="stopped"))
    state.apply("tanh", 0, RunEnded(status="stopped", epochs_done=0, step=7))
    state.apply(NAMES[0], 0, RunEnded(status="finished", epochs_done=1, step=8))
    assert rows()["tanh"] == ("text", "stopped")
    assert rows()[NAMES[0]] == ("button", "Drop")  # one seed still trains
    assert rows()["last command"][1] == "drop tanh: dropped after step 7"
    assert all(kind == "text" for kind, _ in rows("stopped").values())  # ended: read-only


class Comparison:
    """A `vizlab compare` process whose output goes to files (a pipe nobody reads would fill
    and stop it)."""

    def __init__(self, data_dir, tmp_path, *extra):
        self.out, self.err = tmp_path / "stdout", tmp_path / "stderr"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = start_comparison(data_dir, tmp_path / "runs", out, err, *extra)

    def ended(self) -> bool:
        return self.proc.poll() is not None

    def wait(self, timeout=120) -> tuple[int, str, str]:
        code = self.proc.wait(timeout)
        return code, self.out.read_text(), self.err.read_text()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_comparison(data_dir, runs, out, err, *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIZLAB_", "TORCHELASTIC"))}
    return subprocess.Popen(
        [sys.executable, "-m", "vizlab", "compare", "mlp", "--activation", "relu,tanh",
         "--device", "cpu", "--data-dir", data_dir, "--epochs", "100000", "--batch-size", "41",
         "--runs-dir", str(runs), "--name", "cmp", "--no-visdom", "--progress", "off", *extra],
        stdout=out, stderr=err, env={**env, "OMP_NUM_THREADS": "1"})


def last_step(run_dir):
    """The last step the run's log shows; 0 before it has one (its rank may still be starting)."""
    if not (run_dir / "events.jsonl").is_file():
        return 0
    return max((r["step"] + len(r["losses"]) - 1 for r in log_records(run_dir)
                if r["event"] == "train_steps"), default=0)


def test_vizlab_control_drops_a_variant_and_the_others_go_on(data_dir, tmp_path, capsys,
                                                              visdom_server):
    comparison = tmp_path / "runs" / "cmp"
    job = Comparison(data_dir, tmp_path, "--repeats", "2")
    try:
        wait_until(lambda: job.ended() or (comparison / CONTROL_DIR).is_dir(), 180,
                 "the comparison's control folder")
        assert not job.ended(), job.wait()
        code, out, err = vizlab(capsys, "control", str(comparison), "drop", "selu")
        assert code == 2 and "no variant 'selu'" in err and "relu, tanh" in err
        code, out, err = vizlab(capsys, "control", str(comparison), "pause")
        assert code == 2 and "takes `drop VARIANT`" in err
        code, out, err = vizlab(capsys, "control", str(comparison), "drop", "tanh")
        assert code == 0, err
        assert out.count("drop tanh: dropped after step") == 2  # both seeds' runs
        seeds = [comparison / "tanh-seed0", comparison / "tanh-seed1"]
        relu = comparison / "relu-seed0"
        for run in seeds:
            wait_until(lambda run=run: log_records(run)[-1]["event"] == "run_ended", 60, "its end")
            assert log_records(run)[-1]["status"] == "stopped"
        dropped_at = last_step(relu)
        wait_until(lambda: last_step(relu) > dropped_at + 20, 60, "relu training on")
        code, out, err = vizlab(capsys, "control", str(comparison), "drop", "tanh-seed0")
        assert code == 2 and "has ended" in err
        # Run dirs name one run of a variant: the last ones end the comparison.
        for run in ("relu-seed0", "relu-seed1"):
            code, out, err = vizlab(capsys, "control", str(comparison), "drop", run)
            assert code == 0 and "dropped after step" in out, err
        code, stdout, stderr = job.wait()
    finally:
        job.kill()
    assert code == 0, stderr
    assert "control: drop tanh: dropped after step" in stdout
    summary = json.loads((comparison / COMPARISON_JSON).read_text())
    assert summary["status"] == "stopped"
    assert {r["variant"]: r["status"] for r in summary["variants"]} == \
        {"relu": "stopped", "tanh": "stopped"}
    for run in seeds:  # checkpointed: a dropped run can be resumed like any stopped run
        assert (run / "checkpoint.pt").is_file()
        assert any(r["event"] == "control" and r["command"] == "drop tanh" and r["accepted"]
                   for r in log_records(run))
    # A replay draws the control pane as the comparison left it: read-only, each row's end.
    code, out, err = vizlab(capsys, "replay", str(comparison), "--env", "cmp-dropped",
                            "--visdom-url", visdom_server.url)
    assert code == 0, err
    pane = json.loads(visdom_server.client().get_window_data(control_win("cmp-dropped"),
                                                             "cmp-dropped"))
    rows = {r["name"]: (r["type"], r["value"].strip()) for r in pane["content"]}
    assert rows["tanh"] == rows["relu"] == ("text", "stopped")
    assert rows["comparison"] == ("text", "stopped")
    assert rows["last command"][1].startswith("drop ")  # (the last log read: replay has no clock)


def test_a_dropped_variant_stops_alone_under_nproc(data_dir, tmp_path, capsys):
    """The command reaches the rank that trains the variant (rank 1: through the relay)."""
    comparison = tmp_path / "runs" / "cmp"
    job = Comparison(data_dir, tmp_path, "--nproc", "2", "--progress", "plain")
    try:
        wait_until(lambda: job.ended() or (comparison / CONTROL_DIR).is_dir(), 240,
                 "the comparison's control folder")
        assert not job.ended(), job.wait()
        deal = wait_until(lambda: next((line for line in job.out.read_text().splitlines()
                                      if "rank 1: " in line), None), 60, "the deal")
        far = deal.split("rank 1: ")[1].split(")")[0].split(";")[0].strip()
        near = ({"relu", "tanh"} - {far}).pop()
        dropped, kept = comparison / f"{far}-seed0", comparison / f"{near}-seed0"
        wait_until(lambda: last_step(dropped) > 0 and last_step(kept) > 0, 120, "both training")
        code, out, err = vizlab(capsys, "control", str(comparison), "drop", far)
        assert code == 0 and f"drop {far}: dropped after step" in out, err
        wait_until(lambda: log_records(dropped)[-1]["event"] == "run_ended", 60, "its end")
        at = last_step(kept)
        wait_until(lambda: last_step(kept) > at + 20, 60, "the other training on")
        job.proc.send_signal(signal.SIGINT)  # the other: interrupted; the dropped stays stopped
        code, stdout, stderr = job.wait()
    finally:
        job.kill()
    assert code == 130, stderr
    summary = json.loads((comparison / COMPARISON_JSON).read_text())
    assert {r["variant"]: r["status"] for r in summary["variants"]} == \
        {near: "interrupted", far: "stopped"}


def test_a_comparison_with_no_control_takes_no_commands(data_dir, tmp_path, capsys):
    code, out, err = vizlab(capsys, "compare", "mlp", "--activation", "relu,tanh", "--data-dir",
                            data_dir, "--epochs", "1", "--runs-dir", str(tmp_path), "--name",
                            "quiet", "--no-visdom", "--no-control", "--progress", "off")
    assert code == 0, err
    assert json.loads((tmp_path / "quiet" / COMPARISON_JSON).read_text())["steering"] is False
    assert not (tmp_path / "quiet" / CONTROL_DIR).exists()
    code, out, err = vizlab(capsys, "control", str(tmp_path / "quiet"), "drop", "tanh")
    assert code == 2 and "has ended" in err


@pytest.mark.parametrize("manifest, message", [
    ('{"members": [1]}', "cannot read"),
    ("[]", "does not hold a JSON object"),
    ('{"members": [{"variant": "tanh", "seed": 0, "run_dir": "../elsewhere"}]}',
     "no variant 'tanh'"),  # a member outside the comparison dir is never written to
])
def test_a_crafted_comparison_manifest_is_one_line(tmp_path, capsys, manifest, message):
    (tmp_path / "crafted").mkdir()
    (tmp_path / "crafted" / COMPARISON_JSON).write_text(manifest)
    code, out, err = vizlab(capsys, "control", str(tmp_path / "crafted"), "drop", "tanh")
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted"]
