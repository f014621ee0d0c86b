"""One contract, every sink: take every event kind of a real run, close with any status, close twice,
ignore events after close, and never raise into training for a problem of its own."""

from __future__ import annotations

import io
import json

import pytest
from idxdata import write_idx_dataset

from vizlab.config import build_config
from vizlab.events import RunStarted, event_from_dict
from vizlab.report import NullSink, Reporter
from vizlab.report.console import ConsoleSink
from vizlab.report.runlog import RunLogSink, read_events
from vizlab.run.prepare import build_engine, prepare_run


class Collect:
    def __init__(self):
        self.events = []

    def handle(self, event):
        self.events.append(event)

    def close(self, status="finished"):
        pass


@pytest.fixture(scope="module")
def run_events(tmp_path_factory):
    """Every event of a real two-epoch run (with histograms), in order."""
    data_dir = write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=128, n_test=64)
    cfg = build_config("cnn", data_dir=str(data_dir), epochs=2, batch_size=32, histograms=True,
                       visdom=False, progress="off", samples=8)
    prep = prepare_run(cfg.replace(device="cpu"))
    splits = prep.splits
    sink = Collect()
    engine = build_engine(prep, None, Reporter([sink]))
    start = RunStarted(run="contract", run_dir="runs/contract", model="cnn", params=26474,
                       device="cpu", dataset="mnist", classes=tuple(splits.classes),
                       config=cfg.to_dict(), started="2026-11-23T10:00:00+00:00", epochs=2,
                       steps_per_epoch=engine.steps_per_epoch, train_samples=128, test_samples=64)
    sink.handle(start)
    sink.handle(engine.sample_set_event())
    engine.run()
    kinds = {e.kind for e in sink.events}
    assert kinds == {"run_started", "sample_set", "train_steps", "epoch_end", "predictions",
                     "histograms", "run_ended"}
    return sink.events


def make_sinks(tmp_path, server):
    """(name, sink, look) for every sink vizlab has, Visdom both with a live server and a dead
    one; ``look()`` is what the outside world sees of the sink: its file, its windows, its text,
    and for the dead server what it tried (its counters)."""
    from conftest import free_port
    from rich.console import Console

    from vizlab.report.visdom_sink import VisdomSink

    env = f"contract-{tmp_path.name}"
    log = RunLogSink(tmp_path)
    live = VisdomSink(server.url, env=env)
    down = VisdomSink(f"http://127.0.0.1:{free_port()}", env="contract-down", close_timeout=1.0)
    sinks = [("null", NullSink(), lambda: None),
             ("runlog", log, log.path.read_bytes),
             ("visdom", live, lambda: (server.client().get_window_data(None, env),
                                       live.stats["handled"], live.stats["requests"])),
             ("visdom-down", down, lambda: (down.stats["handled"], down.stats["requests"]))]
    for mode in ("rich", "plain", "off"):
        out = io.StringIO()
        sinks.append((f"console-{mode}", ConsoleSink(mode, Console(file=out, width=100)),
                      out.getvalue))
    return sinks


@pytest.mark.parametrize("status", ["finished", "failed", "interrupted"])
def test_every_sink_honours_the_contract(run_events, tmp_path, status, visdom_server, capfd):
    """Through a Reporter, as the training loop calls them: nothing raised into the loop (a dead
    server included), a second close() changes nothing, and events after close() are ignored:
    what each sink shows the world stays as it was at close."""
    sinks = make_sinks(tmp_path, visdom_server)
    reporter = Reporter([sink for _, sink, _ in sinks])
    for event in run_events:
        reporter.handle(event)
    reporter.close(status)
    seen = {name: look() for name, _, look in sinks}
    assert all(seen[name] for name, _, _ in sinks if name not in ("null", "console-off"))
    reporter.close(status)  # twice is harmless
    for event in run_events[:3] + run_events[-1:]:  # after close: ignored, no error
        reporter.handle(event)
    for name, _, look in sinks:
        assert look() == seen[name], name
    err = capfd.readouterr().err.splitlines()  # the dead server: one warning, not one a call
    assert len(err) == 1 and "Visdom at http://127.0.0.1:" in err[0], err


def test_events_round_trip_through_json(run_events):
    for event in run_events:
        assert event_from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_run_log_holds_every_event_in_order(run_events, tmp_path):
    sink = RunLogSink(tmp_path)
    for event in run_events:
        sink.handle(event)
    sink.close()
    assert list(read_events(tmp_path)) == run_events
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"event": "train_steps", "epoch": 3, "ste')  # a torn last line (killed run)
    assert list(read_events(tmp_path)) == run_events


def test_console_plain_prints_one_line_per_epoch(run_events):
    out = io.StringIO()
    from rich.console import Console

    sink = ConsoleSink("plain", Console(file=out, width=200))
    for event in run_events:
        sink.handle(event)
    sink.close()
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 2
    assert lines[-1].startswith("finished: 2 epochs")
