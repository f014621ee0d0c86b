"""The dashboard's control pane as pure functions: what it shows, what an edit asks for."""

from __future__ import annotations

import pytest
from runlogs import run_events

from vizlab.events import Control, RunEnded, RunStarted
from vizlab.report.control_pane import (
    ENDED_LAYOUT,
    LAYOUT,
    ControlState,
    command_from_update,
    control_win,
    describe,
)
from vizlab.report.dashboard import Dashboard

ENV = "run-a"
WIN = control_win(ENV)


def update(row, value="clicked", env=ENV, win=WIN, pane=None, kind="PropertyUpdate"):
    message = {"event_type": kind, "propertyId": row, "value": value, "target": win, "eid": env}
    if pane is not None:
        message["pane_data"] = pane
    return message


def answer(command, accepted=True, step=5, **kw):
    action = command.split()[0]
    return Control(action=action, accepted=accepted, step=step, epoch=1, source="dashboard",
                   command=command, **kw)


def rows(packet):
    return {r["name"]: r for r in packet["data"][0]["content"]}


def test_window_ids_are_unique_per_env():
    assert control_win("a") != control_win("b") and control_win("a") == control_win("a")
    assert control_win("a").startswith("control-")


@pytest.mark.parametrize("row, value, text", [
    (1, "0.003", "lr 0.003"), (1, " x0.5 ", "lr x0.5"), (2, "clicked", "pause"),
    (3, "clicked", "checkpoint"), (4, "clicked", "stop")])
def test_edits_become_commands(row, value, text):
    command = command_from_update(update(row, value), ENV, WIN)
    assert command.text == text and command.source == "dashboard" and command.error == ""


def test_the_pause_button_says_what_it_does():
    pane = {"content": [{"name": n, "value": "Resume" if n == LAYOUT[2] else ""} for n in LAYOUT]}
    assert command_from_update(update(2, pane=pane), ENV, WIN).action == "resume"


def test_a_bad_rate_travels_as_a_refusal():
    command = command_from_update(update(1, "-1"), ENV, WIN)
    assert command.action == "lr" and "above 0" in command.error


@pytest.mark.parametrize("message", [
    update(4, env="other-run"),  # every client gets every env's events (Visdom 0.2.4)
    update(4, win="control"),  # another window of this env
    update(4, kind="KeyPress"), update(4, kind="Click"),
    update(0, "edited"), update(5, "edited"),  # rows that only show state
    update(True), update("4"), update(-1), update(99), update(None),
    "not a dict", {"event_type": "PropertyUpdate"}])
def test_other_messages_ask_for_nothing(message):
    assert command_from_update(message, ENV, WIN) is None


def test_the_pane_shows_the_live_state_then_goes_read_only():
    events = run_events(ENV, epochs=1, steps_per_epoch=20, status="")
    state = ControlState()
    for event in events:
        state.apply(event)
    shown = rows(state.packet())
    assert list(shown) == list(LAYOUT) and state.win == WIN
    assert shown["state"]["value"] == "running" and shown["pause / resume"]["value"] == "Pause"
    last_rate = [e for e in events if e.kind == "train_steps"][-1].lrs[-1]
    assert float(shown["learning rate"]["value"]) == pytest.approx(last_rate, rel=1e-3)

    assert state.apply(answer("pause", old="running", new="paused"))
    shown = rows(state.packet())
    assert shown["state"]["value"] == "paused" and shown["pause / resume"]["value"] == "Resume"
    assert state.apply(answer("lr 0.5", old=0.002, new=0.5, lr_factor=250.0))
    assert rows(state.packet())["learning rate"]["value"] == "0.5"

    assert state.apply(answer("lr abc", accepted=False, reason="not a number"))
    shown = rows(state.packet())  # a trailing space more: the user's typing is undone
    assert shown["learning rate"]["value"] == "0.5 " and "refused" in shown["last command"]["value"]

    state.apply(RunEnded(status="stopped", epochs_done=1, step=5))
    packet = state.packet()
    assert [r["name"] for r in packet["data"][0]["content"]] == list(ENDED_LAYOUT)
    assert packet["opts"]["title"] == "control (read-only)"


def test_no_control_shows_state_without_buttons():
    start = run_events(ENV, epochs=1, steps_per_epoch=5)[0]
    start = RunStarted(**{**vars(start), "config": {**start.config, "control": False}})
    state = ControlState()
    state.apply(start)
    shown = rows(state.packet())
    assert list(shown) == list(ENDED_LAYOUT) and "--no-control" in shown["state"]["value"]


def test_describe_says_what_happened_and_who_asked():
    line = describe(answer("lr x0.5", old=0.01, new=0.005, lr_factor=0.5, origin="bob@h pid 1"))
    assert line == ("lr x0.5: rate 0.01 -> 0.005 from step 6 (x0.5 of the schedule) "
                    "(bob@h pid 1)")
    assert describe(answer("resume", False, reason="already running")) == (
        "resume: refused at step 5: already running (dashboard)")


def test_the_lr_window_marks_commands_and_the_pane_is_a_light_window():
    events = run_events(ENV, epochs=2, steps_per_epoch=20, status="")
    board = Dashboard.from_events(events[:4])
    assert WIN in board.WINDOWS and WIN in board.LIGHT
    assert board.apply(answer("lr x0.5", step=10, old=0.002, new=0.001)) == {"lr", WIN}
    board.apply(answer("lr 9", accepted=False, step=12, reason="no"))
    marks = [t for t in board.pane("lr").packet["data"] if t["name"] == "changed by a command"]
    assert len(marks) == 1 and marks[0]["x"] == [11] and marks[0]["y"] == [0.001]
    assert board.pane(WIN).packet["data"][0]["type"] == "properties"
    resumed = RunStarted(**{**vars(events[0]), "resumed": True, "start_step": 8,
                            "start_epoch": 1})
    board.apply(resumed)  # a resume from step 8 redoes steps 9..: their commands are gone
    assert [t["name"] for t in board.pane("lr").packet["data"]] == ["learning rate"]


def test_a_board_for_another_env_draws_the_pane_under_that_envs_id():
    board = Dashboard.from_events(run_events(ENV, epochs=1, steps_per_epoch=5), env="elsewhere")
    assert board.control_win == control_win("elsewhere")
    assert board.pane(control_win("elsewhere")) is not None


def test_a_replayed_run_that_logged_no_end_has_no_buttons():
    board = Dashboard.from_events(run_events(ENV, epochs=1, steps_per_epoch=5, status=""))
    assert list(rows(board.pane(WIN).packet)) == list(LAYOUT)
    board.closed_status = "unfinished"  # as `vizlab replay` marks a killed run
    shown = rows(board.pane(WIN).packet)
    assert list(shown) == list(ENDED_LAYOUT) and shown["state"]["value"] == "unfinished"
