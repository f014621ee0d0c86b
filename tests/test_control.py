"""Steering: the command vocabulary, the inbox, and what the engine does with each command."""

from __future__ import annotations

import threading
import time

import pytest
from idxdata import write_idx_dataset

from vizlab.config import build_config
from vizlab.control import ControlError, Inbox, parse_command, refused
from vizlab.events import Control, EpochEnd, RunEnded, TrainSteps, event_from_dict
from vizlab.report import Reporter
from vizlab.run.prepare import build_engine, prepare_run
from vizlab.run.rundir import RunDir
from vizlab.run_files import CHECKPOINT_FILE

STEPS = 10  # 320 samples, batch 32


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=320, n_test=100))


class Collect:
    """Records events; ``when(kind, fn)`` calls fn(event) on the training thread as they come."""

    def __init__(self):
        self.events, self.hooks = [], []
        self.changed = threading.Condition()

    def handle(self, event):
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()
        for kind, fn in list(self.hooks):
            if isinstance(event, kind):
                fn(event)

    def close(self, status="finished"):
        pass

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    def wait_for(self, predicate, timeout=60.0):
        with self.changed:
            assert self.changed.wait_for(lambda: any(predicate(e) for e in self.events), timeout)
            return next(e for e in self.events if predicate(e))


def make_engine(data_dir, inbox, checkpoint_dir=None, checkpoint=None, **overrides):
    """An engine built the one way runs build theirs (prepare_run, build_engine); its
    checkpoints go to ``checkpoint_dir`` when given."""
    options = dict(epochs=2, batch_size=32, data_dir=data_dir, visdom=False, progress="off",
                   optimizer="sgd", lr=0.01, schedule="none", device="cpu")
    options.update(overrides)
    cfg = build_config("mlp", **options)
    sink = Collect()
    prep = prepare_run(cfg, checkpoint=checkpoint)
    run_dir = RunDir(checkpoint_dir) if checkpoint_dir else None
    return build_engine(prep, run_dir, Reporter([sink]), inbox=inbox), sink


def checkpoint_in(path):
    return RunDir(path).load_checkpoint()


def rates(sink) -> list[float]:
    return [lr for e in sink.of(TrainSteps) for lr in e.lrs]


def put(inbox, *texts):
    for text in texts:
        inbox.put(parse_command(text, source="test", origin="pytest"))


# -- the vocabulary --------------------------------------------------------------------------

@pytest.mark.parametrize("text, action, rate, factor", [
    ("stop", "stop", None, False), ("PAUSE", "pause", None, False),
    ("resume", "resume", None, False), ("checkpoint", "checkpoint", None, False),
    ("lr 0.003", "lr", 0.003, False), ("lr 1e-3", "lr", 1e-3, False),
    ("lr x0.5", "lr", 0.5, True), ("lr *2", "lr", 2.0, True), ("lr ×0.1", "lr", 0.1, True),
    ("  lr   X0.25 ", "lr", 0.25, True)])
def test_commands_parse(text, action, rate, factor):
    c = parse_command(text, source="terminal", origin="me", request="r1")
    assert (c.action, c.rate, c.factor) == (action, rate, factor)
    assert (c.source, c.origin, c.request, c.error) == ("terminal", "me", "r1", "")


@pytest.mark.parametrize("text, message", [
    ("", "no command"), ("jump", "unknown command"), ("lr", "one value"),
    ("lr 1 2", "one value"), ("lr abc", "not a number"), ("lr -0.1", "above 0"),
    ("lr 0", "above 0"), ("lr nan", "above 0"), ("lr inf", "above 0"), ("lr 1000", "at most"),
    ("lr x0", "above 0"), ("lr x1e9", "at most"), ("stop now", "takes no value"),
    ("drop", "a variant's name"), ("lr " + "1" * 300, "too long")])
def test_bad_commands_are_refused_with_one_line(text, message):
    with pytest.raises(ControlError, match=message) as info:
        parse_command(text)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_inbox_pending_is_a_plain_flag():
    inbox = Inbox()
    assert inbox.pending is False and inbox.take() == [] and inbox.wait(0.01) is False
    put(inbox, "pause", "resume")
    assert inbox.pending is True and inbox.wait(0.01) is True
    assert [c.action for c in inbox.take()] == ["pause", "resume"]
    assert inbox.pending is False


def test_control_events_round_trip_and_are_checked_when_read():
    rate = Control(action="lr", accepted=True, step=7, epoch=1, source="dashboard",
                   origin="x", command="lr x0.5", old=0.01, new=0.005, lr_factor=0.5)
    state = Control(action="pause", accepted=True, step=7, epoch=1, old="running", new="paused")
    for event in (rate, state):
        assert event_from_dict(event.to_dict()) == event
    for bad in ({"old": [1]}, {"new": True}, {"step": -1}, {"accepted": "yes"}):
        with pytest.raises(ValueError, match="control"):
            event_from_dict({**state.to_dict(), **bad})


# -- the engine ------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["none", "onecycle", "cosine"])
def test_a_factor_changes_the_rate_from_the_next_step(data_dir, schedule):
    plain, plain_sink = make_engine(data_dir, None, schedule=schedule)
    plain.run()
    inbox = Inbox()
    engine, sink = make_engine(data_dir, inbox, schedule=schedule)
    put(inbox, "lr x0.5")  # acted on at the first step boundary, after step 1
    engine.run()
    before, after = rates(plain_sink), rates(sink)
    assert after[0] == before[0]
    assert after[1:] == pytest.approx([r * 0.5 for r in before[1:]], rel=1e-9)
    [answer] = sink.of(Control)
    assert answer.accepted and answer.step == 1 and answer.lr_factor == 0.5
    assert answer.old == pytest.approx(before[1]) and answer.new == pytest.approx(after[1])
    assert sink.of(EpochEnd)[-1].lr == pytest.approx(0.5 * plain_sink.of(EpochEnd)[-1].lr)


@pytest.mark.parametrize("schedule", ["none", "onecycle", "cosine"])
def test_a_rate_is_fixed_from_the_next_step_until_a_factor_asks_for_the_schedule(data_dir,
                                                                                schedule):
    plain, plain_sink = make_engine(data_dir, None, schedule=schedule)
    plain.run()
    inbox = Inbox()
    engine, sink = make_engine(data_dir, inbox, schedule=schedule)
    put(inbox, "lr 0.0042")  # after step 1
    # Asked at the end of epoch 1, acted on after step 11: back to (half) the schedule.
    sink.hooks.append((TrainSteps, lambda e: e.step + len(e.losses) - 1 == STEPS
                       and put(inbox, "lr x0.5")))
    engine.run()
    before, after = rates(plain_sink), rates(sink)
    assert after[0] == before[0]
    assert after[1:STEPS + 1] == [0.0042] * STEPS  # exactly what was asked, whatever the schedule
    assert after[STEPS + 1:] == pytest.approx([r * 0.5 for r in before[STEPS + 1:]], rel=1e-9)
    fixed, half = sink.of(Control)
    assert fixed.lr_fixed and not half.lr_fixed and half.lr_factor == 0.5
    assert (fixed.old, fixed.new) == (pytest.approx(before[1]), 0.0042)


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
@pytest.mark.parametrize("command", ["lr x0.25", "lr 0.0042"])
def test_a_resumed_run_keeps_the_changed_rate(data_dir, tmp_path, schedule, command):
    plain, plain_sink = make_engine(data_dir, None, schedule=schedule)
    plain.run()
    inbox = Inbox()
    first, first_sink = make_engine(data_dir, inbox, tmp_path, schedule=schedule)
    put(inbox, command, "stop")
    ended = first.run()
    assert ended.status == "stopped" and ended.step == 1
    second, second_sink = make_engine(data_dir, Inbox(), schedule=schedule,
                                      checkpoint=checkpoint_in(tmp_path))
    assert second.run().status == "finished"
    resumed, before = rates(second_sink), rates(plain_sink)[1:]
    if command == "lr x0.25":
        assert second.progress.lr_factor == 0.25 and second.progress.lr_fixed is None
        assert resumed == pytest.approx([r * 0.25 for r in before], rel=1e-9)
    else:
        assert second.progress.lr_fixed == 0.0042
        assert resumed == pytest.approx([0.0042] * len(before), rel=1e-12)


def test_stop_finishes_the_step_writes_a_checkpoint_and_ends_stopped(data_dir, tmp_path):
    inbox = Inbox()
    engine, sink = make_engine(data_dir, inbox, tmp_path)
    # Asked at the end of epoch 1: acted on after the next step, the first of epoch 2.
    sink.hooks.append((TrainSteps, lambda e: e.step + len(e.losses) - 1 == STEPS
                       and put(inbox, "stop")))
    ended = engine.run()
    [answer] = sink.of(Control)
    assert answer.action == "stop" and answer.accepted and answer.new == "stopped"
    assert ended.status == "stopped" and ended.step == answer.step == STEPS + 1
    assert ended.message == f"stopped at epoch 2, step {ended.step}"
    assert sink.of(RunEnded) == [ended]
    state = checkpoint_in(tmp_path)
    assert state["progress"]["global_step"] == ended.step
    assert state["progress"]["step_in_epoch"] == ended.step - STEPS


def test_checkpoint_writes_one_now(data_dir, tmp_path):
    inbox = Inbox()
    engine, sink = make_engine(data_dir, inbox, tmp_path, epochs=1)
    put(inbox, "checkpoint")  # acted on after step 1
    seen = []
    sink.hooks.append((Control, lambda e: seen.append(checkpoint_in(tmp_path))))
    engine.run()
    [answer] = sink.of(Control)
    assert answer.accepted and answer.new == str(tmp_path / CHECKPOINT_FILE)
    assert seen[0]["progress"]["global_step"] == answer.step == 1


def test_pause_holds_the_step_counter_and_is_not_training_time(data_dir):
    inbox = Inbox()
    engine, sink = make_engine(data_dir, inbox, epochs=1)
    put(inbox, "pause")  # acted on after step 1
    thread = threading.Thread(target=engine.run)
    thread.start()
    try:
        paused = sink.wait_for(lambda e: isinstance(e, Control) and e.action == "pause")
        t0 = time.monotonic()
        put(inbox, "checkpoint")  # no checkpointer: refused, but answered while paused
        refused_cp = sink.wait_for(lambda e: isinstance(e, Control) and e.action == "checkpoint")
        put(inbox, "lr x2", "pause")
        sink.wait_for(lambda e: isinstance(e, Control) and e.command == "pause" and not e.accepted)
        assert engine.progress.global_step == paused.step  # nothing trained while paused
        deadline = t0 + 0.5  # let real time pass: it must not show up as training time
        while time.monotonic() < deadline:
            inbox.wait(deadline - time.monotonic())
        pause_seconds = time.monotonic() - t0
        put(inbox, "resume")
    finally:
        thread.join(60)
    answers = sink.of(Control)
    assert [(a.command, a.accepted) for a in answers] == [
        ("pause", True), ("checkpoint", False), ("lr x2", True), ("pause", False),
        ("resume", True)]
    assert {a.step for a in answers} == {paused.step}
    assert refused_cp.reason == "this run writes no checkpoints"
    assert answers[3].reason == "already paused"
    assert sink.of(RunEnded)[-1].status == "finished"
    [end] = sink.of(EpochEnd)
    assert end.epoch_time < pause_seconds  # a tiny epoch: its time holds none of the pause
    assert rates(sink)[paused.step:] == [0.02] * (STEPS - paused.step)


def test_refusals_are_recorded(data_dir):
    inbox = Inbox()
    engine, sink = make_engine(data_dir, inbox, epochs=1)
    inbox.put(refused("lr abc", "lr 'abc' is not a number", source="dashboard"))
    put(inbox, "resume", "drop relu")
    # After the last step: too late to act on, answered as the run ends.
    sink.hooks.append((EpochEnd, lambda e: put(inbox, "lr 0.1")))
    engine.run()
    answers = sink.of(Control)
    assert [(a.command, a.accepted, a.reason) for a in answers] == [
        ("lr abc", False, "lr 'abc' is not a number"),
        ("resume", False, "already running"),
        ("drop relu", False, "drop applies to a comparison's variants"),
        ("lr 0.1", False, "the run has ended")]
    assert sink.events.index(answers[-1]) < sink.events.index(sink.of(RunEnded)[0])
    assert rates(sink) == [0.01] * STEPS


def test_drop_takes_a_variant_name_with_spaces_whole():
    c = parse_command("drop  activation=relu   lr=0.1")
    assert (c.action, c.variant) == ("drop", "activation=relu lr=0.1")
