"""The two doors for steering, against real parts: the Visdom sink listening on a real server's
websocket (edits sent the way the dashboard page sends them), `vizlab server start --readonly`,
and `vizlab control` steering a real `vizlab run` process through its run dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, stop_visdom, vizlab, wait_port, wait_until
from idxdata import write_idx_dataset
from runlogs import open_run_log, run_events

from vizlab.control import Inbox
from vizlab.events import Control
from vizlab.report.control_pane import LAYOUT, control_win
from vizlab.report.visdom_events import EventListener
from vizlab.report.visdom_sink import VisdomSink
from vizlab.run.control_files import Watcher, submit
from vizlab.run_files import CONTROL_DIR

FAST = dict(flush_interval=0.1, heavy_interval=0.3, flush_budget=1.0)


class Page:
    """A websocket to the server's /socket, as the dashboard page opens it: its edits travel
    as ``forward_to_vis`` messages, which the server fills with the pane's data and sends to
    every Python client."""

    def __init__(self, server_url: str, cookie: str | None = None):
        import websocket

        port = server_url.rsplit(":", 1)[1]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/socket",
                                              origin=f"http://127.0.0.1:{port}", timeout=10,
                                              header=[f"Cookie: {cookie}"] if cookie else [])
        self.hello = json.loads(self.ws.recv())  # {"command": "register", "readonly": ...}

    def edit(self, env, win, row, value="clicked", kind="PropertyUpdate"):
        self.ws.send(json.dumps({"cmd": "forward_to_vis", "data": {
            "event_type": kind, "propertyId": row, "value": value, "target": win, "eid": env}}))

    def close(self):
        self.ws.close()


def start_server(tmp_path, *extra):
    from conftest import VisdomServer

    port = free_port()
    log = open(tmp_path / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "vizlab.server.main", "--port", str(port),
                             "--env-dir", str(tmp_path), "--state-dir", str(tmp_path), *extra],
                            stdout=log, stderr=subprocess.STDOUT)
    assert wait_port(port), (tmp_path / "server.log").read_text()
    return VisdomServer(port, tmp_path, proc)


def live_sink(server_url, tmp_path, env, inbox):
    """A sink holding a started run (its control pane drawn) and listening for commands."""
    log = open_run_log(tmp_path / env, {"name": env})
    sink = VisdomSink(server_url, env, log_path=log.path, flush_log=log.flush, inbox=inbox,
                      **FAST)
    for event in run_events(env, epochs=1, steps_per_epoch=30, status="")[:3]:
        log.handle(event)
        sink.handle(event)
    return sink, log


def pane_rows(server, env):
    data = json.loads(server.client().get_window_data(control_win(env), env))
    return {r["name"]: r["value"] for r in data["content"]}


def test_dashboard_edits_reach_the_inbox_and_the_pane_answers(visdom_server, tmp_path):
    env, inbox = "door-live", Inbox()
    sink, log = live_sink(visdom_server.url, tmp_path, env, inbox)
    page = Page(visdom_server.url)
    try:
        win = control_win(env)
        wait_until(lambda: visdom_server.client().win_exists(win, env), what="the control pane")
        wait_until(sink.listener.connected.is_set, what="the websocket")
        assert pane_rows(visdom_server, env)["state"] == "running"
        # Another run's pane (Visdom 0.2.4 drops the page's socket for a pane it lacks).
        other = control_win("another-run")
        visdom_server.client().properties([{"type": "button", "name": "stop", "value": "Stop"}],
                                          win=other, env="another-run")
        page.edit("another-run", other, 0)  # another env's Stop: every client gets it
        page.edit(env, win, 4, kind="KeyPress")
        page.edit(env, win, LAYOUT.index("learning rate"), "x0.5")
        page.edit(env, win, LAYOUT.index("stop"))
        wait_until(lambda: inbox.wait(0.5), what="a command")
        got = []
        wait_until(lambda: got.extend(inbox.take()) or len(got) >= 2, what="two commands")
        assert [c.text for c in got] == ["lr x0.5", "stop"]
        assert all(c.source == "dashboard" and env in c.origin for c in got)

        # The run answers with a Control event; the sink redraws the pane at once.
        answer = Control(action="lr", accepted=True, step=12, epoch=1, source="dashboard",
                         command="lr x0.5", old=0.002, new=0.001, lr_factor=0.5)
        log.handle(answer)
        sink.handle(answer)
        wait_until(lambda: pane_rows(visdom_server, env)["learning rate"] == "0.001",
                 what="the redrawn pane")
        assert "rate 0.002 -> 0.001 from step 13" in pane_rows(visdom_server, env)["last command"]

        # Closing the pane in the page does not close the door: the sink draws it again.
        client = visdom_server.client()
        drawn = json.loads(client.get_window_data(win, env))["contentID"]
        page.ws.send(json.dumps({"cmd": "close", "data": win, "eid": env}))
        wait_until(lambda: client.win_exists(win, env) and json.loads(client.get_window_data(
            win, env))["contentID"] != drawn, what="the pane drawn again")
    finally:
        page.close()
        sink.close()
        log.close()
    assert not sink.listener._thread.is_alive()


def test_a_readonly_server_takes_no_commands(tmp_path):
    server = start_server(tmp_path, "--readonly")
    env, inbox = "door-readonly", Inbox()
    sink, log = live_sink(server.url, tmp_path, env, inbox)
    seen = []
    barrier = EventListener(sink._target, seen.append).start()
    page = Page(server.url)
    try:
        assert page.hello["readonly"] is True  # the page knows: it sends nothing
        wait_until(lambda: server.client().win_exists(control_win(env), env), what="the pane")
        wait_until(sink.listener.connected.is_set, what="the websocket")
        wait_until(barrier.connected.is_set, what="the barrier's websocket")
        page.edit(env, control_win(env), LAYOUT.index("stop"))
        # Anything the server forwarded would reach every client before this echo does.
        import websocket

        source = websocket.create_connection(f"ws://127.0.0.1:{server.port}/vis_socket")
        source.recv()
        source.send(json.dumps({"cmd": "echo", "event_type": "barrier"}))
        wait_until(lambda: any(m.get("event_type") == "barrier" for m in seen), what="the echo")
        source.close()
        assert inbox.take() == []
        assert not any(m.get("event_type") == "PropertyUpdate" for m in seen)
    finally:
        page.close()
        barrier.close()
        sink.close()
        log.close()
        stop_visdom(server)


def test_behind_a_login_the_sink_logs_in_to_listen(tmp_path, monkeypatch):
    from vizlab.report import visdom_client as vc

    monkeypatch.setenv("VIZLAB_VISDOM_USER", "ada")
    monkeypatch.setenv("VIZLAB_VISDOM_PASSWORD", "s3cret")
    server = start_server(tmp_path, "--login")
    env, inbox = "door-login", Inbox()
    sink, log = live_sink(server.url, tmp_path, env, inbox)
    browser = vc.connect(server.url, "main")  # the page's user, logged in the same way
    page = Page(server.url, cookie=browser.cookie)
    try:
        wait_until(lambda: control_win(env) in vc.window_data(browser, env), what="the pane")
        page.edit(env, control_win(env), LAYOUT.index("pause / resume"))
        wait_until(lambda: inbox.wait(0.5), what="the command, through the login")
        assert [c.text for c in inbox.take()] == ["pause"]
    finally:
        page.close()
        browser.close()
        sink.close()
        log.close()
        stop_visdom(server)


def test_command_files_are_untrusted(tmp_path, capfd):
    inbox = Inbox()
    (tmp_path / CONTROL_DIR).mkdir()
    (tmp_path / CONTROL_DIR / "0-stale.json").write_text('{"command": "stop"}')
    watcher = Watcher(tmp_path, inbox, poll=0.02).start()
    try:
        folder = tmp_path / CONTROL_DIR
        assert not (folder / "0-stale.json").exists()  # left by a dead run: not for this one
        (folder / "1-big.json").write_text(json.dumps({"command": "stop", "pad": "x" * 5000}))
        (folder / "2-list.json").write_text("[1, 2]")
        (folder / "3-bytes.json").write_bytes(b"\xff\xfe")
        (folder / "4-link.json").symlink_to(tmp_path / "elsewhere.json")
        (tmp_path / "elsewhere.json").write_text('{"command": "stop"}')
        (folder / "5-bad.json").write_text('{"command": "lr -3", "request": "r5", "origin": 7}')
        request = submit(tmp_path, "lr x0.5")
        got = []
        wait_until(lambda: got.extend(inbox.take()) or len(got) >= 2, what="two commands")
        by_request = {c.request: c for c in got}
        bad, good = by_request["r5"], by_request[request.id]
        assert bad.error and bad.request == "r5" and bad.origin == "vizlab control"
        assert good.text == "lr x0.5" and good.request == request.id and good.error == ""
        assert good.source == "terminal" and "pid" in good.origin
        assert sorted(p.name for p in folder.iterdir()) == []
    finally:
        watcher.close()
    assert not (tmp_path / CONTROL_DIR).exists()  # nobody listens any more
    assert capfd.readouterr().err.count("ignored a malformed command file") == 4


# -- `vizlab control` against a real `vizlab run` ----------------------------------------------

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=320, n_test=100))


def start_run(data_dir, runs_dir, name, *extra):
    """A long `vizlab run` (stopped by the test), once its terminal door is open."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vizlab", "run", "mlp", "--data-dir", data_dir,
         "--epochs", "100000", "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.01",
         "--schedule", "none", "--runs-dir", str(runs_dir), "--name", name, "--no-visdom",
         "--progress", "plain", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    run_dir = Path(runs_dir) / name
    wait_until(lambda: proc.poll() is not None or ((run_dir / "events.jsonl").is_file()
             and b"train_steps" in (run_dir / "events.jsonl").read_bytes()), 120, "the run")
    return proc, run_dir


def log_records(run_dir):
    """The run log's whole lines (one being written is left out)."""
    text = (run_dir / "events.jsonl").read_text()
    return [json.loads(line) for line in text.split("\n")[:-1]]


def test_vizlab_control_steers_a_run_through_its_run_dir(data_dir, tmp_path, capsys):
    proc, run_dir = start_run(data_dir, tmp_path / "runs", "steered")
    try:
        if (run_dir / CONTROL_DIR).is_dir() is False:
            wait_until(lambda: (run_dir / CONTROL_DIR).is_dir(), what="the control folder")
        code, out, err = vizlab(capsys, "control", str(run_dir), "pause")
        assert code == 0, err
        paused = int(out.split("paused after step ")[1].split()[0])
        # While paused the step counter holds: later commands are answered at the same step.
        code, out, err = vizlab(capsys, "control", "steered", "checkpoint",
                                "--runs-dir", str(tmp_path / "runs"))
        assert code == 0 and f"checkpoint written at step {paused}" in out, err
        code, out, err = vizlab(capsys, "control", str(run_dir), "lr", "0.005")
        assert code == 0 and f"rate 0.01 -> 0.005 from step {paused + 1}" in out, err
        code, out, err = vizlab(capsys, "control", str(run_dir), "pause")
        assert code == 2 and "refused" in err and "already paused" in err
        files_before = len(log_records(run_dir))
        code, out, err = vizlab(capsys, "control", str(run_dir), "lr", "abc")
        assert code == 2 and err.count("\n") == 1 and "not a number" in err
        assert len(log_records(run_dir)) == files_before  # refused before reaching the run
        steps = [r for r in log_records(run_dir) if r["event"] == "train_steps"]
        assert steps[-1]["step"] + len(steps[-1]["losses"]) - 1 == paused
        code, out, err = vizlab(capsys, "control", str(run_dir), "resume")
        assert code == 0 and f"running again from step {paused + 1}" in out, err
        code, out, err = vizlab(capsys, "control", str(run_dir), "stop")
        assert code == 0 and "stopping after step" in out, err
        stopped = int(out.split("stopping after step ")[1].split()[0])
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "control: lr 0.005: rate 0.01 -> 0.005" in stdout  # the terminal line
    records = log_records(run_dir)
    answers = [r for r in records if r["event"] == "control"]
    assert [(a["command"], a["accepted"]) for a in answers] == [
        ("pause", True), ("checkpoint", True), ("lr 0.005", True), ("pause", False),
        ("resume", True), ("stop", True)]
    assert all(a["source"] == "terminal" and a["request"] for a in answers)
    ended = records[-1]
    assert ended["event"] == "run_ended" and ended["status"] == "stopped"
    assert ended["step"] == stopped > paused
    rates = {r["step"] + i: lr for r in records if r["event"] == "train_steps"
             for i, lr in enumerate(r["lrs"])}
    assert {rates[s] for s in range(1, paused + 1)} == {0.01}
    assert {rates[s] for s in range(paused + 1, stopped + 1)} == {0.005}
    import torch

    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert state["progress"]["global_step"] == stopped
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.005
    assert not (run_dir / CONTROL_DIR).exists()
    code, out, err = vizlab(capsys, "control", str(run_dir), "stop")
    assert code == 2 and "has ended (stopped)" in err


def test_no_control_runs_take_no_commands(data_dir, tmp_path, capsys):
    proc, run_dir = start_run(data_dir, tmp_path / "runs", "deaf", "--no-control")
    try:
        code, out, err = vizlab(capsys, "control", str(run_dir), "stop")
        assert code == 2 and "not taking commands" in err and "--no-control" in err
        assert not (run_dir / CONTROL_DIR).exists()
    finally:
        proc.kill()
        proc.communicate()
    code, out, err = vizlab(capsys, "control", str(tmp_path / "nowhere"), "stop")
    assert code == 2 and "no run directory" in err


def test_a_symlinked_control_folder_is_neither_emptied_nor_written(tmp_path, capfd):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.json").write_text("{}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / CONTROL_DIR).symlink_to(elsewhere)
    watcher = Watcher(run_dir, Inbox()).start()
    watcher.close()
    assert (elsewhere / "precious.json").is_file() and (run_dir / CONTROL_DIR).is_symlink()
    assert "is not a directory" in capfd.readouterr().err
    from vizlab.errors import VizlabError

    with pytest.raises(VizlabError, match="not taking commands"):
        submit(run_dir, "stop")
    assert [p.name for p in elsewhere.iterdir()] == ["precious.json"]
