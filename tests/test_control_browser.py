"""Steering a real run from its real dashboard: headless Chromium presses the control pane's
buttons and types a learning rate, as a user would; the run's log says what happened.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package; skipped otherwise.
Set VIZLAB_CONTROL_PNG=path to also write a screenshot of the control pane there
(docs/control-pane.png), VIZLAB_COMPARE_PNG=path the comparison's (docs/compare-control-pane.png).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import start_visdom, stop_visdom, wait_until
from idxdata import write_idx_dataset
from test_browser import CHROMEDRIVER, CHROMIUM, _browser, selenium

from vizlab.report.control_pane import control_win
from vizlab.server import assets

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver"),
    pytest.mark.skipif(selenium is None, reason="needs selenium (pip install selenium)"),
]

NAME = "steered-from-the-page"

# The control pane's row named `name`: its <input> or <button>.
FIELD = """
const rows = [...document.querySelectorAll('.content-properties tr')];
const row = rows.find(r => r.querySelector('.table-properties-name').textContent === arguments[0]);
return row ? row.querySelector('input, button') : null;"""
# The same row's [tag, shown text], read in one script: the pane is drawn again as the run
# reports, and an element found by one call may be gone by the next.
SHOWN = f"""const f = (() => {{{FIELD}}})();
return f && [f.tagName, (f.value || f.textContent).trim()];"""


def records(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def answer(run_dir: Path, command: str) -> dict | None:
    return next((r for r in records(run_dir)
                 if r["event"] == "control" and r["command"] == command), None)


def window(server, win: str, env: str) -> dict | None:
    """A window's content as the server holds it; None while it has none (the sink replaces
    windows whole: a read can fall between two draws)."""
    try:
        return json.loads(server.client().get_window_data(win, env))["content"]
    except ValueError:
        return None


@pytest.fixture
def live_run(tmp_path):
    """A long real run drawing to a real server (the test stops it from the page)."""
    assets.ensure_static()
    server = start_visdom(tmp_path)
    # Epochs of a second or so: tinier ones end (and redraw the dashboard) many times a second,
    # more than a browser on a busy 2-core machine keeps up with.
    data = write_idx_dataset(tmp_path / "data", n_train=6400, n_test=100)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vizlab", "run", "mlp", "--data-dir", str(data),
         "--epochs", "10000", "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.01",
         "--schedule", "none", "--runs-dir", str(tmp_path / "runs"), "--name", NAME,
         "--visdom-url", server.url, "--progress", "plain"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        yield server, proc, tmp_path / "runs" / NAME
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        stop_visdom(server)


def test_steer_a_run_from_its_dashboard(live_run, tmp_path):
    from selenium.webdriver.common.keys import Keys

    server, proc, run_dir = live_run
    wait_until(lambda: proc.poll() is not None or server.client().win_exists(control_win(NAME), NAME),
             120, "the run's dashboard")
    assert proc.poll() is None, proc.communicate()[1]
    driver = _browser(tmp_path)
    try:
        driver.get(f"{server.url}/env/{NAME}")
        field = lambda name: driver.execute_script(FIELD, name)
        shown = lambda name: driver.execute_script(SHOWN, name)
        pane_rows = lambda: {r["name"]: r["value"] for r in json.loads(
            server.client().get_window_data(control_win(NAME), NAME))["content"]}
        wait_until(lambda: field("stop") is not None, what="the control pane")
        # The page must also show the run's images: they are what broke typing (#935).
        wait_until(lambda: driver.execute_script(
            "return [...document.querySelectorAll('img')].filter(i => i.complete && "
            "i.naturalWidth >= 8 * 28).length >= 1"), what="the sample images")

        field("pause / resume").click()
        paused = wait_until(lambda: answer(run_dir, "pause"), what="the pause in the log")
        assert paused["accepted"] and paused["source"] == "dashboard"
        wait_until(lambda: shown("pause / resume") == ["BUTTON", "Resume"],
                 what=lambda: f"the Resume button (the server's pane: {pane_rows()})")
        assert shown("state") == ["INPUT", "paused"]

        rate = field("learning rate")
        rate.click()
        rate.send_keys(Keys.CONTROL, "a")
        rate.send_keys("0.005", Keys.ENTER)
        changed = wait_until(lambda: answer(run_dir, "lr 0.005"), what="the rate in the log")
        assert changed["accepted"] and changed["step"] == paused["step"]  # still paused
        assert (changed["old"], changed["new"]) == (0.01, 0.005)
        wait_until(lambda: "0.005" in (shown("last command") or ["", ""])[1],
                 what="the answer on the pane")
        if os.environ.get("VIZLAB_CONTROL_PNG"):
            pane = driver.execute_script(
                "return arguments[0].closest('.react-grid-item')", field("stop"))
            pane.screenshot(os.environ["VIZLAB_CONTROL_PNG"])
        steps = [r for r in records(run_dir) if r["event"] == "train_steps"]
        assert steps[-1]["step"] + len(steps[-1]["losses"]) - 1 == paused["step"]

        field("pause / resume").click()
        resumed = wait_until(lambda: answer(run_dir, "resume"), what="the resume")
        assert resumed["step"] == paused["step"]  # the step counter held until Resume
        wait_until(lambda: max(r["step"] for r in records(run_dir) if r["event"] == "train_steps")
                 > paused["step"] + 1, what="training to go on")
        marks = wait_until(lambda: [t for t in (window(server, "lr", NAME) or {"data": []})[
            "data"] if t["name"] == "changed by a command"],
            what="the mark on the learning-rate window")
        assert marks[0]["x"] == [paused["step"] + 1] and marks[0]["y"] == [0.005]

        wait_until(lambda: shown("pause / resume") == ["BUTTON", "Pause"],
                 what="the Pause button")
        field("stop").click()
        out, err = proc.communicate(timeout=120)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert proc.returncode == 0, err
    log = records(run_dir)
    stop = answer(run_dir, "stop")
    ended = log[-1]
    assert ended["event"] == "run_ended" and ended["status"] == "stopped"
    assert ended["step"] == stop["step"] > paused["step"]
    rates = {r["step"] + i: lr for r in log if r["event"] == "train_steps"
             for i, lr in enumerate(r["lrs"])}
    assert {rates[s] for s in rates if s <= paused["step"]} == {0.01}
    assert {rates[s] for s in rates if s > paused["step"]} == {0.005}
    import torch

    assert torch.load(run_dir / "checkpoint.pt",
                      weights_only=False)["progress"]["global_step"] == stop["step"]
    assert "control: stop: stopping after step" in out
    pane = json.loads(server.client().get_window_data(control_win(NAME), NAME))
    assert [r["value"].strip() for r in pane["content"] if r["name"] == "state"] == ["stopped"]
    assert errors == []
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_drop_a_variant_from_the_comparison_dashboard(tmp_path):
    """In a real comparison, the comparison pane's Drop button ends that variant alone
    ("stopped", checkpointed); the others train on, and the ranking marks it."""
    assets.ensure_static()
    server = start_visdom(tmp_path)
    data = write_idx_dataset(tmp_path / "data", n_train=6400, n_test=100)
    comparison, env = tmp_path / "runs" / "cmp", "cmp"
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vizlab", "compare", "mlp", "--activation", "relu,tanh",
             "--data-dir", str(data), "--epochs", "10000", "--batch-size", "32", "--optimizer",
             "sgd", "--lr", "0.01", "--schedule", "none", "--runs-dir", str(tmp_path / "runs"),
             "--name", "cmp", "--visdom-url", server.url, "--progress", "off"],
            stdout=out, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
    driver = None
    try:
        win = control_win(env)
        wait_until(lambda: proc.poll() is not None or server.client().win_exists(win, env), 120,
                 "the comparison's dashboard")
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        driver = _browser(tmp_path)
        driver.get(f"{server.url}/env/{env}")
        field = lambda name: driver.execute_script(FIELD, name)
        wait_until(lambda: field("tanh") is not None and field("relu") is not None,
                 what="the comparison's control pane")
        field("tanh").click()
        tanh, relu = comparison / "tanh-seed0", comparison / "relu-seed0"
        dropped = wait_until(lambda: answer(tanh, "drop tanh"), what="the drop in tanh's log")
        assert dropped["accepted"] and dropped["source"] == "dashboard"
        wait_until(lambda: records(tanh)[-1]["event"] == "run_ended", what="tanh's end")
        at = max(r["step"] for r in records(relu) if r["event"] == "train_steps")
        wait_until(lambda: max(r["step"] for r in records(relu) if r["event"] == "train_steps")
                 > at + 64, what="relu training on")
        shown = lambda name: driver.execute_script(SHOWN, name)
        wait_until(lambda: shown("tanh") == ["INPUT", "stopped"],
                   what=lambda: f"the pane showing tanh stopped (it shows {shown('tanh')})")
        assert shown("relu") == ["BUTTON", "Drop"]  # relu can still be dropped
        if os.environ.get("VIZLAB_COMPARE_PNG"):
            pane = driver.execute_script(
                "return arguments[0].closest('.react-grid-item')", field("relu"))
            pane.screenshot(os.environ["VIZLAB_COMPARE_PNG"])
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        proc.send_signal(signal.SIGINT)  # relu: interrupted
        assert proc.wait(120) == 130, (tmp_path / "stderr").read_text()
        ranking = json.loads(server.client().get_window_data("cmp_summary", env))["content"]
        pane = json.loads(server.client().get_window_data(win, env))
    finally:
        if driver is not None:
            driver.quit()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_visdom(server)
    assert errors == []
    ended = records(tanh)[-1]
    assert ended["status"] == "stopped" and ended["step"] == dropped["step"]
    assert (tanh / "checkpoint.pt").is_file()
    summary = json.loads((comparison / "comparison.json").read_text())
    assert {r["variant"]: r["status"] for r in summary["variants"]} == \
        {"relu": "interrupted", "tanh": "stopped"}
    row = {name: next(r for r in ranking.split("<tr")[2:] if f">{name}</td>" in r)
           for name in ("tanh", "relu")}
    assert ">stopped</td>" in row["tanh"] and ">interrupted</td>" in row["relu"]  # marked
    rows = {r["name"]: (r["type"], r["value"].strip()) for r in pane["content"]}
    assert rows["tanh"] == ("text", "stopped") and rows["relu"] == ("text", "interrupted")
    assert rows["comparison"] == ("text", "interrupted")  # ended: no buttons left
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
