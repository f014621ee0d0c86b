"""The engine and runner on small IDX files read through the real loading path."""

from __future__ import annotations

import json

import pytest
import torch
from idxdata import write_idx_dataset

from vizlab.config import build_config
from vizlab.events import EpochEnd, Event, RunEnded, TrainSteps
from vizlab.report import Reporter
from vizlab.report.runlog import read_events
from vizlab.run.engine import StopFlag, epoch_permutation
from vizlab.run.prepare import build_engine, prepare_run
from vizlab.run.training import train


class Collect:
    def __init__(self):
        self.events: list[Event] = []

    def handle(self, event):
        self.events.append(event)

    def close(self, status="finished"):
        pass

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


class StopAfter(StopFlag):
    """Requests a stop after `n` steps, as a Ctrl-C between steps would."""

    def __init__(self, n):
        self.n = n

    @property
    def requested(self):
        self.n -= 1
        return self.n < 0


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=320, n_test=100))


def make_engine(data_dir, stop=None, checkpoint=None, **overrides):
    """An engine built the one way runs build theirs (prepare_run, build_engine), no run dir."""
    model = overrides.pop("model", "mlp")
    options = dict(epochs=2, batch_size=32, data_dir=data_dir, visdom=False, progress="off",
                   device="cpu")
    options.update(overrides)
    cfg = build_config(model, **options)
    sink = Collect()
    prep = prepare_run(cfg, checkpoint=checkpoint)
    return build_engine(prep, None, Reporter([sink]), stop=stop), sink


def step_losses(sink):
    return [(e.step + i, loss) for e in sink.of(TrainSteps) for i, loss in enumerate(e.losses)]


def test_training_learns_and_emits_every_step(data_dir):
    engine, sink = make_engine(data_dir, epochs=3)
    ended = engine.run()
    assert ended.status == "finished" and ended.epochs_done == 3
    steps = step_losses(sink)
    assert [s for s, _ in steps] == list(range(1, 3 * 10 + 1))  # 320 / 32 = 10 steps an epoch
    ends = sink.of(EpochEnd)
    assert [e.epoch for e in ends] == [1, 2, 3]
    assert ends[-1].test_acc > 60  # ten classes: chance is 10%
    assert ends[-1].test_loss < ends[0].test_loss
    assert sum(map(sum, ends[-1].confusion)) == 100
    assert len(ends[-1].per_class_acc) == 10


def test_same_seed_same_metrics(data_dir):
    a, sink_a = make_engine(data_dir, seed=3)
    b, sink_b = make_engine(data_dir, seed=3)
    c, sink_c = make_engine(data_dir, seed=4)
    for engine in (a, b, c):
        engine.run()
    assert step_losses(sink_a) == step_losses(sink_b)
    assert sink_a.of(EpochEnd)[-1].test_loss == sink_b.of(EpochEnd)[-1].test_loss
    assert step_losses(sink_a) != step_losses(sink_c)


def test_data_order_is_a_function_of_seed_and_epoch():
    assert torch.equal(epoch_permutation(0, 2, 50), epoch_permutation(0, 2, 50))
    assert not torch.equal(epoch_permutation(0, 1, 50), epoch_permutation(0, 2, 50))


def test_interrupted_then_resumed_equals_uninterrupted(data_dir):
    whole, whole_sink = make_engine(data_dir, model="cnn", optimizer="sgd", lr=0.05)
    whole.run()
    first, first_sink = make_engine(data_dir, model="cnn", optimizer="sgd", lr=0.05,
                                    stop=StopAfter(13))  # mid-way through epoch 2
    assert first.run().status == "interrupted"
    state = first.state.state_dict(first.cfg)
    assert state["progress"]["epoch"] == 2 and state["progress"]["step_in_epoch"] == 4
    second, second_sink = make_engine(data_dir, model="cnn", optimizer="sgd", lr=0.05,
                                      checkpoint=state)
    assert second.run().status == "finished"
    assert step_losses(first_sink) + step_losses(second_sink) == step_losses(whole_sink)
    assert second_sink.of(EpochEnd)[-1].test_loss == whole_sink.of(EpochEnd)[-1].test_loss


def test_nan_loss_fails_the_run(data_dir):
    engine, sink = make_engine(data_dir, optimizer="sgd", lr=1e6, momentum=0.0, schedule="none")
    ended = engine.run()
    assert ended.status == "failed"
    assert "lower --lr" in ended.message
    assert sink.of(RunEnded)[-1].status == "failed"


def test_validation_split_decides_best(data_dir):
    engine, sink = make_engine(data_dir, val_split=64, epochs=1)
    engine.run()
    end = sink.of(EpochEnd)[-1]
    assert end.val_acc is not None and end.best_acc == end.val_acc
    assert engine.steps_per_epoch == 8  # 256 samples left for training


def test_train_writes_run_dir(data_dir, tmp_path):
    cfg = build_config("mlp", epochs=1, batch_size=64, data_dir=data_dir, visdom=False,
                       progress="off", runs_dir=str(tmp_path / "runs"), name="r1")
    ended, run_dir = train(cfg)
    assert ended.status == "finished"
    assert json.loads((run_dir / "config.json").read_text())["model"] == "mlp"
    kinds = [e.kind for e in read_events(run_dir)]
    assert kinds[:2] == ["run_started", "sample_set"]
    assert kinds[-3:] == ["epoch_end", "predictions", "run_ended"]
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["progress"]["epoch"] == 2  # the next epoch to train

    resumed, _ = train(cfg.replace(resume=str(run_dir), epochs=2))
    assert resumed.status == "finished" and resumed.epochs_done == 2
    events = list(read_events(run_dir))
    starts = [e for e in events if e.kind == "run_started"]
    assert [s.resumed for s in starts] == [False, True] and starts[1].start_epoch == 2
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [1, 2]


def test_bf16_autocast_trains_to_the_same_accuracy_range(data_dir):
    plain, plain_sink = make_engine(data_dir, epochs=3)
    amp, amp_sink = make_engine(data_dir, epochs=3, amp="bf16")
    plain.run()
    assert amp.run().status == "finished"
    a, b = plain_sink.of(EpochEnd)[-1], amp_sink.of(EpochEnd)[-1]
    assert b.test_acc > 60 and abs(a.test_acc - b.test_acc) < 15  # bf16 noise, same learning
    assert step_losses(amp_sink) != step_losses(plain_sink)  # it did run in bfloat16
