"""The Visdom sink against a real Visdom server: what the windows hold, and the faults.

Every test draws into its own env; windows are read back with the Visdom client.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from pathlib import Path

import pytest
from conftest import free_port, start_visdom, stop_visdom, wait_for
from runlogs import DIGITS, open_run_log, run_events

from vizlab.errors import VizlabError
from vizlab.events import EpochEnd, Histograms, RunEnded, RunStarted, TrainSteps
from vizlab.report.curves import MAX_POINTS, StepCurve, bucket_width
from vizlab.report.dashboard import Dashboard
from vizlab.report.runlog import read_events
from vizlab.report.visdom_client import parse_url
from vizlab.report.visdom_sink import VisdomSink

FAST = dict(flush_interval=0.1, heavy_interval=0.3, flush_budget=1.0)


@pytest.fixture
def servers():
    """Starts a test's own Visdom servers (start(dir, port=None)); all stopped at teardown."""
    started = []

    def start(env_dir, port=None):
        server = start_visdom(env_dir, port)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            stop_visdom(server)


def windows(server, env) -> dict:
    return json.loads(server.client().get_window_data(None, env))


def last_x(server, env, win="train_loss"):
    """The last x of a plot window's first trace (True for other windows), or None while the
    window does not exist."""
    client = server.client()
    if not client.win_exists(win, env):
        return None
    content = json.loads(client.get_window_data(win, env))["content"]
    return content["data"][0]["x"][-1] if isinstance(content, dict) and "data" in content else True


def traces(window) -> dict:
    return {t["name"]: t for t in window["content"]["data"]}


def steps_of(events):
    losses, lrs = {}, {}
    for e in events:
        if isinstance(e, RunStarted) and e.resumed:
            for s in [s for s in losses if s > e.start_step]:
                del losses[s], lrs[s]
        if isinstance(e, TrainSteps):
            for i, (loss, lr) in enumerate(zip(e.losses, e.lrs)):
                losses[e.step + i], lrs[e.step + i] = loss, lr
    return losses, lrs


def stream(tmp_path, url, env, events, *, flush_every=0, **kw):
    """Feed events through a run log and a sink, as the reporter does; return (sink, log).
    With ``flush_every``, wait for a flush after that many events: the windows are drawn as
    the run goes, not only at close."""
    log = open_run_log(tmp_path / env)
    sink = VisdomSink(url, env, log_path=log.path, flush_log=log.flush, **{**FAST, **kw})
    flushed = 0
    for i, event in enumerate(events, 1):
        log.handle(event)
        sink.handle(event)
        if flush_every and i % flush_every == 0:
            assert wait_for(lambda n=flushed: sink.stats["flushes"] > n)
            flushed = sink.stats["flushes"]
    return sink, log


def assert_complete_curve(window, events):
    losses, lrs = steps_of(events)
    raw = window["content"]["data"][0]
    assert raw["x"] == [float(s) for s in sorted(losses)]  # every step once, in order
    assert raw["y"] == [losses[s] for s in sorted(losses)]


# -- what the windows hold -------------------------------------------------------------------

def test_live_windows_hold_what_the_run_log_implies(visdom_server, tmp_path, capfd):
    classes = DIGITS[:9] + ("<b>nine</b>",)
    events = run_events("live", epochs=3, steps_per_epoch=150, classes=classes, histograms=True,
                        val=True)
    sink, log = stream(tmp_path, visdom_server.url, "t-live", events, flush_every=10)
    sink.close("finished")
    log.close()
    win = windows(visdom_server, "t-live")
    assert set(win) == {"train_loss", "lr", "test_loss", "test_acc", "samples", "predictions",
                        "misclassified", "confusion", "per_class", "run_card", "weights",
                        "gradients"}

    losses, lrs = steps_of(events)
    loss = traces(win["train_loss"])
    assert len(loss["loss"]["x"]) == 450 and len(loss["smoothed"]["y"]) == 450
    assert_complete_curve(win["train_loss"], events)
    ema, expected = 0.0, []
    for n, s in enumerate(sorted(losses), 1):  # debiased EMA, computed independently
        ema = 0.95 * ema + 0.05 * losses[s]
        expected.append(ema / (1 - 0.95 ** n))
    assert loss["smoothed"]["y"] == pytest.approx(expected, rel=1e-12)
    assert traces(win["lr"])["learning rate"]["y"] == [lrs[s] for s in sorted(lrs)]

    epochs = [e for e in events if isinstance(e, EpochEnd)]
    acc = traces(win["test_acc"])
    assert acc["test"]["x"] == [1.0, 2.0, 3.0]
    assert acc["test"]["y"] == [e.test_acc for e in epochs]
    assert acc["validation"]["y"] == [e.val_acc for e in epochs]
    assert traces(win["test_loss"])["test"]["y"] == [e.test_loss for e in epochs]
    for name, w in win.items():  # every window has a title; plots have axis titles, a legend
        assert w["title"], name
        if w["type"] == "plot":
            layout = w["content"]["layout"]
            assert layout["xaxis"]["title"] and layout["yaxis"]["title"], name
            assert layout["showlegend"] is True, name

    assert win["samples"]["type"] == "image"
    assert win["samples"]["content"]["src"].startswith("data:image/png;base64,")
    assert win["misclassified"]["type"] == "image"
    table = win["predictions"]["content"]
    assert "&lt;b&gt;nine&lt;/b&gt;" in table or "nine" not in table
    assert "<b>nine" not in table
    card = win["run_card"]["content"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card and "<script>" not in card
    assert "finished" in card
    assert "&lt;b&gt;nine&lt;/b&gt;" in json.dumps(win["confusion"]["content"]["data"][0]["x"])
    assert capfd.readouterr().err == ""  # nothing of visdom's own printing reaches the terminal


def test_every_trace_stays_within_2000_points_however_long_the_run(visdom_server, tmp_path):
    events = run_events("long", epochs=3, steps_per_epoch=1667, chunk=64)  # 5001 steps
    sink, log = stream(tmp_path, visdom_server.url, "t-long", events, flush_every=20)
    sink.close()
    log.close()
    win = windows(visdom_server, "t-long")
    losses, _ = steps_of(events)
    for name in ("train_loss", "lr"):
        for t in win[name]["content"]["data"]:
            assert len(t["x"]) == len(t["y"]) == math.ceil(5001 / 4) <= MAX_POINTS
            assert t["x"] == sorted(set(t["x"]))  # strictly increasing: no point twice
    raw = win["train_loss"]["content"]["data"][0]
    assert raw["name"] == "loss (mean of 4 steps)"
    assert raw["x"][-2:] == [5000.0, 5001.0]  # the last bucket is partial
    assert raw["y"][0] == pytest.approx(sum(losses[s] for s in range(1, 5)) / 4, rel=1e-15)
    assert raw["y"][-1] == losses[5001]


# -- faults ----------------------------------------------------------------------------------

def test_server_absent_at_start_then_started_gives_complete_curves(tmp_path, capfd, servers):
    port = free_port()
    events = run_events("late", epochs=2, steps_per_epoch=200)
    half = len(events) // 2
    sink, log = stream(tmp_path, f"http://127.0.0.1:{port}", "t-late", events[:half])
    assert wait_for(lambda: capfd.readouterr().err.count("vizlab: warning:") == 1, 10)
    server = servers(tmp_path, port)
    client = server.client()
    assert wait_for(lambda: client.win_exists("train_loss", "t-late"), 20)  # redrawn from log
    for event in events[half:]:
        log.handle(event)
        sink.handle(event)
    sink.close()
    log.close()
    win = windows(server, "t-late")
    assert_complete_curve(win["train_loss"], events)
    assert len(traces(win["test_acc"])["test"]["y"]) == 2
    assert capfd.readouterr().err == ""  # one warning in all (read above), no second one


def test_server_killed_mid_run_warns_once_and_close_returns(tmp_path, capfd, servers):
    server = servers(tmp_path)
    events = run_events("killed", epochs=2, steps_per_epoch=200)
    half = len(events) // 2
    sink, log = stream(tmp_path, server.url, "t-killed", events[:half], close_timeout=2.0)
    client = server.client()
    assert wait_for(lambda: client.win_exists("test_acc", "t-killed"))
    stop_visdom(server)
    err = ""

    def warned():
        nonlocal err
        err += capfd.readouterr().err
        return "warning" in err

    rest = events[half:]
    for i, event in enumerate(rest):
        log.handle(event)
        sink.handle(event)
        if i == len(rest) // 2:  # the sink notices while training goes on
            assert wait_for(warned)
    sink.close("finished")  # returns: close_timeout bounds its last requests
    sink.close("finished")  # twice is harmless
    err = (err + capfd.readouterr().err).splitlines()
    assert len(err) == 1 and err[0].startswith("vizlab: warning: Visdom at ")
    assert "t-killed" in err[0]  # points at the run log


@pytest.mark.parametrize("from_save", [False, True], ids=["empty", "from-older-save"])
def test_server_restarted_between_flushes_is_detected_and_redrawn(tmp_path, capfd, servers,
                                                                  from_save):
    """A server restarted while the sink had nothing to send answers every later call: only
    the hash check of a window written since the last save notices that the server lost the
    env, or went back to the env saved at the end of epoch 1."""
    server = servers(tmp_path)
    events = run_events("restart", epochs=2, steps_per_epoch=300, chunk=20)
    first_epoch_end = next(i for i, e in enumerate(events) if isinstance(e, EpochEnd))
    cut = first_epoch_end + 10  # epoch 1 done, then a few chunks of epoch 2
    sink, log = stream(tmp_path, server.url, "t-restart", events[:cut])
    # Every window drawn and saved, nothing left to send: the sink goes quiet.
    assert wait_for(lambda: sink.stats["drawn"] == sink.stats["handled"] == cut)
    assert last_x(server, "t-restart", "predictions") is not None
    if from_save:
        server.proc.kill()  # a crash: no save at exit, the env file is the epoch-1 save
        server.proc.wait()
    else:
        stop_visdom(server)
        (tmp_path / "t-restart.json").unlink()  # the restarted server starts empty
    server = servers(tmp_path, server.port)
    steps_only = [e for e in events[cut:] if isinstance(e, TrainSteps)]
    for event in steps_only:
        log.handle(event)
        sink.handle(event)
    sink.close()
    log.close()
    win = windows(server, "t-restart")
    assert {"samples", "predictions", "confusion", "test_acc", "run_card"} <= set(win)
    assert_complete_curve(win["train_loss"], events[:cut] + steps_only)
    assert sink.stats["redraws"] == 2 and capfd.readouterr().err == ""


def test_a_full_queue_drops_events_then_redraws_them_from_the_run_log(visdom_server, tmp_path,
                                                                     capfd):
    events = run_events("overflow", epochs=2, steps_per_epoch=300, chunk=10)
    sink, log = stream(tmp_path, visdom_server.url, "t-overflow", events, max_queue=3)
    sink.close()
    log.close()
    assert sink.stats["dropped"] > 0
    win = windows(visdom_server, "t-overflow")
    assert_complete_curve(win["train_loss"], events)
    assert len(traces(win["test_acc"])["test"]["y"]) == 2
    assert capfd.readouterr().err == ""  # nothing lost: nothing to warn about


def test_without_a_run_log_a_full_queue_says_once_that_it_dropped_events(visdom_server, capfd):
    """Your own training loop, no run log: what a full queue drops cannot be redrawn."""
    events = run_events("no-log", epochs=2, steps_per_epoch=300, chunk=10)
    sink = VisdomSink(visdom_server.url, "t-no-log", max_queue=3, **FAST)
    for event in events:
        sink.handle(event)
    sink.close()
    assert sink.stats["dropped"] > 0
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1 and "fell behind and dropped" in err[0], err
    assert "give VisdomSink a run log" in err[0]


def test_resumed_run_draws_its_whole_history_once(visdom_server, tmp_path):
    first = run_events("resumed", epochs=3, steps_per_epoch=100, status="")[:-4]  # killed
    log = open_run_log(tmp_path / "t-resumed")
    for event in first:
        log.handle(event)
    log.close("interrupted")
    with open(log.path, "a") as f:
        f.write('{"event":"train_steps","epoch":3,"st')  # the torn line of a killed run
    assert max(steps_of(first)[0]) > 200  # the log holds steps past the epoch-2 checkpoint
    second = run_events("resumed", epochs=4, steps_per_epoch=100, start_epoch=3, seed=1)
    log = open_run_log(tmp_path / "t-resumed")  # the resumed run's sink (the killed one's lost)
    sink = VisdomSink(visdom_server.url, "t-resumed", log_path=log.path, flush_log=log.flush,
                      **FAST)
    for event in second:
        log.handle(event)
        sink.handle(event)
    sink.close()
    log.close()
    win = windows(visdom_server, "t-resumed")
    assert_complete_curve(win["train_loss"], first + second)
    assert traces(win["test_acc"])["test"]["x"] == [1.0, 2.0, 3.0, 4.0]
    assert "resumed" in win["run_card"]["content"]


@pytest.mark.parametrize("status", ["finished", "failed", "interrupted"])
def test_close_with_each_status_shows_it_on_the_run_card(visdom_server, tmp_path, status):
    env = f"t-status-{status}"
    events = run_events(env, epochs=1, steps_per_epoch=30, status="")
    sink, log = stream(tmp_path, visdom_server.url, env, events)
    sink.close(status)
    sink.close(status)
    sink.handle(RunEnded(status="finished", epochs_done=1, step=30))  # after close: ignored
    assert f">{status}<" in windows(visdom_server, env)["run_card"]["content"]


def peer_closed(conn: socket.socket) -> bool:
    """Whether the other end closed ``conn`` (reads and drops what it sent)."""
    conn.setblocking(False)
    try:
        while True:
            if not conn.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_handle_and_close_never_wait_for_the_server(capfd):
    """A server that accepts and never answers: the sink's thread hangs in its first request,
    and the training thread's handle() and close() still return. (What handle() costs is
    measured in scripts/bench_report.py.)"""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(30)
        sink = VisdomSink(f"http://127.0.0.1:{server.getsockname()[1]}", "t-hang",
                          close_timeout=0.5)
        conn, _ = server.accept()  # the sink's thread now waits for an answer
        with conn:
            event = TrainSteps(epoch=1, step=1, losses=(0.5,) * 64, lrs=(0.1,) * 64)
            for _ in range(5_000):
                sink.handle(event)
            assert not peer_closed(conn)  # all queued while the request still hangs
            assert sink.stats["handled"] == 5_000 and sink.stats["dropped"] == 0
            closing = threading.Thread(target=sink.close)
            closing.start()
            closing.join(60)  # a hang guard, not a speed claim
            assert not closing.is_alive()
            assert sink.stats["drawn"] == 0 and not peer_closed(conn)  # still unanswered
        # Hang up: the sink's thread sees the server go, says so once, and ends.
    assert wait_for(lambda: "warning" in capfd.readouterr().err)


def test_bad_urls_are_user_errors():
    assert parse_url("http://localhost:8097").url == "http://localhost:8097"
    assert parse_url("localhost").url == "http://localhost:8097"
    assert parse_url("https://viz.example.org/visdom/").url == "https://viz.example.org:443/visdom"
    assert parse_url("http://[::1]:9000").url == "http://[::1]:9000"
    for bad in ("ftp://host:1", "http://:8097", "http://host:99999"):
        with pytest.raises(VizlabError):
            parse_url(bad)
    with pytest.raises(VizlabError):
        VisdomSink("http://host:notaport", "x")


# -- curves and the dashboard state (no server) ----------------------------------------------

def test_bucket_width_is_the_smallest_power_of_two_within_2000_points():
    assert [bucket_width(n) for n in (1, 2000, 2001, 4000, 4001, 10**6)] == [1, 1, 2, 2, 4, 512]


def test_curve_points_depend_on_the_steps_not_on_how_they_arrived():
    losses = [math.sin(i) + 2 for i in range(1, 4500)]
    whole, chunked = StepCurve(), StepCurve()
    whole.set_steps(1, losses, [0.1] * len(losses))
    widths = set()
    for start in range(0, len(losses), 37):
        chunked.set_steps(start + 1, losses[start:start + 37], [0.1] * 37)
        widths.add(chunked.points().width)
    assert chunked.points() == whole.points()
    assert widths == {1, 2, 4} and len(whole.points()) == 1125  # coarsened as the run grew
    version = chunked.version
    assert chunked.set_steps(101, losses[100:200], [0.1] * 100) is False  # same values: no-op
    assert chunked.version == version
    assert chunked.truncate(3000) and chunked.width == 2 and len(chunked.points()) == 1500
    chunked.set_steps(3001, losses[3000:], [0.1] * 1499)
    assert chunked.points() == whole.points()  # a rewind and redo gives the same curve


def test_applying_a_stretch_of_events_twice_changes_nothing():
    events = run_events("twice", epochs=3, steps_per_epoch=100)
    once = Dashboard.from_events(events)
    twice = Dashboard.from_events(events[:40] + events[25:40] + events[40:])
    assert [p.packet for p in once.panes()] == [p.packet for p in twice.panes()]


def test_without_flush_log_a_lagging_run_log_still_gives_complete_curves(visdom_server, tmp_path):
    events = run_events("lagging", epochs=2, steps_per_epoch=200)
    log = open_run_log(tmp_path / "t-lagging", flush_every=3600)  # step chunks lag on disk
    sink = VisdomSink(visdom_server.url, "t-lagging", log_path=log.path, **FAST)
    for event in events:
        log.handle(event)
        sink.handle(event)
    sink.close()
    log.close()
    assert sink.stats["redraws"] >= 1  # drawn from a log that lacked the latest events
    assert_complete_curve(windows(visdom_server, "t-lagging")["train_loss"], events)


def test_only_events_the_log_lacks_are_applied_again():
    from vizlab.report.replay import not_yet_logged as _not_yet_logged

    events = run_events("lag", epochs=1, steps_per_epoch=100)
    assert _not_yet_logged(events[5:], events[:8]) == events[8:]  # the log lags
    assert _not_yet_logged(events[5:9], events) == []  # the log is ahead (dropped events)
    assert _not_yet_logged(events[5:], []) == events[5:]  # nothing flushed yet
    assert _not_yet_logged([], events) == []


def start_login_server(tmp_path, user, password):
    """A Visdom server started with login (its cookie secret kept in tmp_path)."""
    import subprocess
    import sys

    from conftest import VisdomServer, wait_port

    port = free_port()
    (tmp_path / "COOKIE_SECRET").write_text("test-secret")
    code = ("import sys, visdom.server.app as app; app.DEFAULT_ENV_PATH = sys.argv[2] + '/'; "
            "from visdom.utils.server_utils import hash_password as h; "
            "from visdom.server.run_server import start_server; "
            "start_server(port=int(sys.argv[1]), base_url='', env_path=sys.argv[2], "
            "bind_local=True, print_func=lambda port: None, "
            "user_credential={'username': sys.argv[3], 'password': h(h(sys.argv[4]))})")
    proc = subprocess.Popen([sys.executable, "-c", code, str(port), str(tmp_path), user, password],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_port(port)
    return VisdomServer(port, tmp_path, proc)


def test_login_with_the_vizlab_credentials(tmp_path, monkeypatch, capfd):
    from vizlab.report import visdom_client as vc

    server = start_login_server(tmp_path, "ada", "s3cret")
    try:
        monkeypatch.setenv("VIZLAB_VISDOM_USER", "ada")
        monkeypatch.setenv("VIZLAB_VISDOM_PASSWORD", "s3cret")
        sink, log = stream(tmp_path, server.url, "t-login", run_events("login", epochs=1))
        sink.close()
        viz = vc.connect(server.url, "t-login")
        assert "train_loss" in vc.window_data(viz, "t-login")
        assert capfd.readouterr().err == ""
        monkeypatch.setenv("VIZLAB_VISDOM_PASSWORD", "wrong")
        sink, log = stream(tmp_path, server.url, "t-login-bad", run_events("bad", epochs=1))
        sink.close()
        err = capfd.readouterr().err.splitlines()
        assert len(err) == 1 and "login to Visdom as 'ada' failed" in err[0]
        monkeypatch.delenv("VIZLAB_VISDOM_PASSWORD")
        with pytest.raises(VizlabError):
            VisdomSink(server.url, "t-login-none")
        monkeypatch.delenv("VIZLAB_VISDOM_USER")
        with pytest.raises(vc.VisdomRejected, match="asks for a login"):
            vc.connect(server.url, "t-login-none")
    finally:
        stop_visdom(server)


def test_flushes_space_out_when_they_cost_more_than_their_budget(visdom_server):
    """Two sinks fed the same steps side by side: one may spend all its time flushing (budget
    1), the other a ten-thousandth (after a flush of 1 ms it waits 10 s, the most). Paced by the
    first one's flushes, the second flushes at most twice while the first flushes again and
    again."""
    steps = [e for e in run_events("budget", epochs=1, steps_per_epoch=2000, chunk=10)
             if isinstance(e, TrainSteps)]
    sinks = {budget: VisdomSink(visdom_server.url, f"t-budget-{budget}", flush_interval=0.05,
                                heavy_interval=0.3, flush_budget=budget)
             for budget in (1.0, 1e-4)}
    steady, flushed = sinks[1.0], 0
    for i, event in enumerate(steps, 1):
        for sink in sinks.values():
            sink.handle(event)
        if i % 25 == 0:
            assert wait_for(lambda n=flushed: steady.stats["flushes"] > n)
            flushed = steady.stats["flushes"]
    counts = {budget: sink.stats["flushes"] for budget, sink in sinks.items()}
    for sink in sinks.values():
        sink.close()
    assert counts[1e-4] <= 2 and counts[1.0] >= len(steps) // 25


def test_a_diverged_run_draws_gaps_never_invalid_json():
    nan, inf = float("nan"), float("inf")
    events = run_events("nan", epochs=1, steps_per_epoch=40, histograms=True)
    events.append(TrainSteps(epoch=2, step=41, losses=(0.5, nan, inf, nan), lrs=(0.1,) * 4))
    events.append(Histograms(epoch=2, layers={"w": {"weight": [1, 2], "weight_range": [nan, 1.0],
                                                    "grad": [3, 4], "grad_range": [0.0, 1.0]}}))
    board = Dashboard.from_events(events)
    for pane in board.panes():
        json.dumps(pane.packet, allow_nan=False)  # NaN would break the browser's JSON.parse
    raw = board.pane("train_loss").packet["data"][0]
    assert raw["y"][-4:] == [0.5, None, None, None]
    assert board.pane("weights") is None and board.pane("gradients") is not None


def test_the_readme_example_of_your_own_training_loop_runs(visdom_server, tmp_path,
                                                          monkeypatch, capfd):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Your own training loop"):]
    code = section[section.index("```python\n") + 10:section.index("```\n", 10)]
    monkeypatch.chdir(tmp_path)
    code = code.replace("http://localhost:8097", visdom_server.url)
    exec(compile(code, "README.md", "exec"), {"my_losses": [2.0 / i for i in range(1, 301)]})
    events = list(read_events(tmp_path / "runs" / "my-experiment"))
    assert [e.step for e in events] == list(range(1, 301))
    window = windows(visdom_server, "my-experiment")["train_loss"]
    assert_complete_curve(window, events)
    assert capfd.readouterr().err == ""
