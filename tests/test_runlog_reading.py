"""Run logs and configs read back as untrusted input: bad lines reported, fields type-checked,
sizes bounded, only regular files read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from runlogs import open_run_log, run_events, write_run

from vizlab.errors import VizlabError
from vizlab.event_checks import (
    MAX_CHUNK,
    MAX_CLASSES,
    MAX_IMAGES,
    MAX_LINE,
    MAX_SIDE,
    MAX_STEP,
    MAX_TEXT,
)
from vizlab.events import encode_images, event_from_dict
from vizlab.report.runlog import read_events

# -- bad lines ---------------------------------------------------------------------------------


def logged(tmp_path, name="run", **kw):
    events = run_events(name, epochs=2, steps_per_epoch=40, **kw)
    return events, write_run(tmp_path / name, events)


def test_only_a_torn_last_line_is_skipped_silently(tmp_path, capfd):
    events, path = logged(tmp_path)
    with open(path, "a") as f:
        f.write('{"event":"train_steps","epoch":3,"st')  # a killed run: no newline at the end
    log = read_events(path.parent)
    assert list(log) == events
    assert (log.bad, log.torn) == (0, True) and capfd.readouterr().err == ""


def test_bad_lines_anywhere_else_are_counted_and_reported_once(tmp_path, capfd):
    events, path = logged(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    good = lines[:5] + lines[6:]  # line 6 (a train_steps chunk) replaced below
    bad = ['{"event":"train_steps","epoch":1,"st\n',  # torn, but not the last line
           '{"event":"control","command":"stop"}\n',  # a kind this version does not know
           '{"event":"train_steps","epoch":1,"step":"7","losses":[0.5],"lrs":[0.1]}\n',
           "[1, 2]\n"]
    path.write_text("".join(good[:5] + bad[:2] + good[5:9] + bad[2:] + good[9:]) +
                    '{"event":"run_ended","status":"finished"}\n')  # bad, though last: whole
    log = read_events(path.parent)
    assert list(log) == events[:5] + events[6:]
    assert log.bad == 5 and not log.torn
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "skipped 5 bad lines (line 6: " in err, err
    assert str(path) in err
    assert list(read_events(path.parent, warn_bad=False)) and capfd.readouterr().err == ""


def test_an_over_long_line_is_skipped_without_reading_it_whole(tmp_path):
    events, path = logged(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    with open(path, "w") as f:
        f.writelines(lines[:3])
        f.write('{"event":"run_ended","message":"' + "x" * (MAX_LINE + 10) + '"}\n')
        f.writelines(lines[3:])
    log = read_events(path.parent)
    assert list(log) == events and log.bad == 1 and "over" in log.problem


def test_a_resumed_run_does_not_glue_its_first_line_onto_a_torn_one(tmp_path, capfd):
    first = run_events("r", epochs=3, steps_per_epoch=40, status="")[:-3]
    log = open_run_log(tmp_path / "r")
    for event in first:
        log.handle(event)
    log.close("interrupted")
    with open(log.path, "a") as f:
        f.write('{"event":"train_steps","epoch":3,"step":81,"loss')  # killed mid-line
    second = run_events("r", epochs=3, steps_per_epoch=40, start_epoch=2, seed=1)
    log = open_run_log(tmp_path / "r")
    for event in second:
        log.handle(event)
    log.close()
    reading = read_events(tmp_path / "r")
    assert list(reading) == first + second
    assert reading.bad == 0 and capfd.readouterr().err == ""


def test_a_whole_last_event_without_its_newline_is_kept_on_resume(tmp_path):
    events, path = logged(tmp_path)
    path.write_text(path.read_text().rstrip("\n"))
    log = open_run_log(tmp_path / "run")
    log.handle(events[0])
    log.close()
    assert list(read_events(path.parent)) == events + events[:1]


# -- every field type-checked ------------------------------------------------------------------

def good_dicts() -> dict:
    """One event of every kind, as a run-log line holds it."""
    events = run_events("t", epochs=1, steps_per_epoch=10, histograms=True)
    return {e.kind: json.loads(json.dumps(e.to_dict())) for e in events}


@pytest.mark.parametrize("kind, field, value, reason", [
    ("train_steps", "step", "7", "step is a string, not an integer"),
    ("train_steps", "step", True, "step is a boolean, not an integer"),
    ("train_steps", "step", 7.0, "step is a number, not an integer"),
    ("train_steps", "losses", ["0.5"], "losses is a string, not a number"),
    ("train_steps", "losses", 0.5, "losses is a number, not a list"),
    ("train_steps", "elapsed", None, "elapsed is null, not a number"),
    ("epoch_end", "is_best", "yes", "is_best is a string, not true or false"),
    ("epoch_end", "confusion", [[1, 2], [3]], "not a square matrix"),
    ("epoch_end", "confusion", [[1, -2], [3, 4]], "confusion -2 is out of range"),
    ("epoch_end", "per_class_acc", {"0": 1.0}, "per_class_acc is an object, not a list"),
    ("run_started", "classes", [0, 1], "classes is a number, not a string"),
    ("run_started", "config", [], "config is a list, not an object"),
    ("run_started", "config", {"lr": {"nested": 1}}, "config['lr'] is an object"),
    ("run_started", "run", None, "run is null, not a string"),
    ("sample_set", "labels", [1, 2], "indices and labels differ in length"),
    ("sample_set", "images", "!!!", "images is not base64"),
    ("sample_set", "images", encode_images(b"\0" * 10), "images does not hold"),
    ("predictions", "confidences", [0.5], "preds and confidences differ in length"),
    ("predictions", "wrong_labels", [1], "differ in length"),
    ("histograms", "layers", {"w": [1, 2]}, "is not a histogram entry"),
    ("histograms", "layers", {"w": {"weight": ["a"]}}, "is a string, not a number"),
    ("histograms", "layers", {"w": {"weight_range": [0.0]}}, "is not a list of 2 numbers"),
    ("run_ended", "best_acc", "99", "best_acc is a string, not a number"),
    ("run_ended", "status", 3, "status is a number, not a string"),
])
def test_a_field_of_the_wrong_type_is_refused_with_a_reason(kind, field, value, reason):
    d = good_dicts()[kind]
    d[field] = value
    with pytest.raises(ValueError, match="^" + kind + ": ") as refused:
        event_from_dict(d)
    assert reason in str(refused.value)


def test_what_is_right_still_reads_back():
    for kind, d in good_dicts().items():
        assert event_from_dict(d).kind == kind
    d = good_dicts()["run_ended"]
    d.update(best_acc=None, test_acc=98, wall_time=3, extra="a newer field")  # ints as floats
    assert event_from_dict(d).test_acc == 98
    with pytest.raises(ValueError, match="no 'status'"):
        event_from_dict({"event": "run_ended", "epochs_done": 1, "step": 1})
    with pytest.raises(ValueError, match="unknown event kind"):
        event_from_dict({"event": ["train_steps"]})


# -- every size bounded ------------------------------------------------------------------------

@pytest.mark.parametrize("kind, changes, reason", [
    ("train_steps", {"step": 10**12}, "step 1000000000000 is out of range"),
    ("train_steps", {"step": MAX_STEP}, "steps 10000000.. are out of range"),
    ("train_steps", {"step": 0}, "out of range"),
    ("train_steps", {"losses": [0.5] * (MAX_CHUNK + 1)}, "losses has 65537 entries"),
    ("epoch_end", {"epoch": MAX_STEP + 1}, "epoch 10000001 is out of range"),
    ("epoch_end", {"confusion": [[0] * (MAX_CLASSES + 1)] * (MAX_CLASSES + 1)},
     "confusion has 1001 entries"),
    ("run_started", {"epochs": 10**15}, "epochs 1000000000000000 is out of range"),
    ("run_started", {"params": 10**30}, "out of range"),
    ("run_started", {"run": "x" * (MAX_TEXT + 1)}, "run has 65537 characters"),
    ("run_started", {"config": {f"k{i}": i for i in range(300)}}, "config has 300 entries"),
    ("sample_set", {"height": 10**6}, "height 1000000 is out of range"),
    ("sample_set", {"width": 0}, "width 0 is out of range"),
    ("sample_set", {"height": MAX_SIDE, "width": MAX_SIDE, "indices": [0] * 4,
                    "labels": [0] * 4, "images": ""}, "exceed"),
    ("sample_set", {"indices": [0] * (MAX_IMAGES + 1), "labels": [0] * (MAX_IMAGES + 1)},
     "indices has 1025 entries"),
    ("sample_set", {"labels": [MAX_CLASSES] * 16}, "labels 1000 is out of range"),
    ("histograms", {"layers": {"w": {"weight": [1.0] * 2000}}}, "at most 1024 counts"),
    ("histograms", {"layers": {f"w{i}": {"weight": [1.0] * 1000} for i in range(300)}},
     "bins in all"),
])
def test_sizes_steps_and_counts_are_bounded(kind, changes, reason):
    d = good_dicts()[kind]
    d.update(changes)
    with pytest.raises(ValueError) as refused:
        event_from_dict(d)
    assert reason in str(refused.value)


CRAFTED = [  # each would allocate gigabytes (or crash) if believed
    {"event": "train_steps", "epoch": 1, "step": 10**12, "losses": [0.5], "lrs": [0.1]},
    {"event": "sample_set", "indices": [1], "labels": [1], "images": "AAAA", "height": 10**6,
     "width": 10**6},
    {"event": "sample_set", "indices": [], "labels": [], "images": "", "height": 0, "width": 5},
    {"event": "epoch_end", "epoch": 10**15, "step": 10**15, "train_loss": 1, "test_loss": 1,
     "test_acc": 1, "per_class_acc": [], "confusion": [], "epoch_time": 1, "samples_per_s": 1,
     "lr": 1, "best_acc": 1, "is_best": True},
    {"event": "predictions", "epoch": 1, "preds": [], "confidences": [],
     "wrong_indices": [1, 2, 3, 4], "wrong_labels": [1, 2, 3, 4], "wrong_preds": [1, 2, 3, 4],
     "wrong_images": "AAAA"},  # 3 bytes for 4 images: images of side 0
]

# Peak memory of `vizlab replay` in a process of its own. Measured from a small parent: the
# kernel carries the peak of a process's image before exec over into ru_maxrss, so measured from
# pytest's own child it would include pytest's size.
REPLAY = textwrap.dedent("""
    import resource, subprocess, sys

    def limit():  # address space: today's code dies of MemoryError, not the machine
        resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))

    code = subprocess.run([sys.executable, "-m", "vizlab", *sys.argv[1:]], preexec_fn=limit).returncode
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    print(f"exit={code} peak_mb={peak}")
""")


def test_replay_of_a_crafted_log_stays_bounded(tmp_path, visdom_server):
    """The largest log the bounds allow (the last step allowed, the largest image set), next to
    crafted lines beyond them: replay draws what is sound, skips the rest with one warning line,
    and its peak memory (measured in its own process) stays within a few hundred MB."""
    events = run_events("crafted", epochs=1, steps_per_epoch=20)
    path = write_run(tmp_path / "crafted", events)
    side, n = 64, 2**21 // (64 * 64)  # MAX_PIXELS: 512 images of 64x64
    with open(path, "a") as f:
        for line in CRAFTED:
            f.write(json.dumps(line) + "\n")
        f.write(json.dumps({"event": "train_steps", "epoch": 1, "step": MAX_STEP - 1,
                            "losses": [0.5, 0.4], "lrs": [0.1, 0.1]}) + "\n")
        f.write(json.dumps({"event": "sample_set", "indices": list(range(n)), "labels": [1] * n,
                            "images": encode_images(bytes(n * side * side)), "height": side,
                            "width": side}) + "\n")
    done = subprocess.run([sys.executable, "-c", REPLAY, "replay", str(path.parent),
                           "--visdom-url", visdom_server.url, "--env", "crafted"],
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1].startswith("exit=0 "), done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and f"skipped {len(CRAFTED)} bad lines" in done.stderr
    peak = int(done.stdout.split("peak_mb=")[1])
    print(f"replay of the crafted log: peak RSS {peak} MB")
    assert peak < 500, peak


# -- only regular files ------------------------------------------------------------------------

def cli(*args, timeout=60):
    """The CLI in its own process: a read that blocks fails the test (timeout), never hangs it."""
    return subprocess.run([sys.executable, "-m", "vizlab", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("name", ["events.jsonl", "config.json"])
def test_a_fifo_in_a_run_dir_is_refused_never_read(tmp_path, name):
    runs = tmp_path / "runs"
    write_run(runs / "ok", run_events("ok", epochs=1, steps_per_epoch=10), {"name": "ok"})
    write_run(runs / "odd", run_events("odd", epochs=1, steps_per_epoch=10), {"name": "odd"})
    fifo = runs / "odd" / name
    fifo.unlink()
    os.mkfifo(fifo)
    listed = cli("runs", "--runs-dir", str(runs))
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.count("\n") == 1 and "not a regular file" in listed.stderr
    assert str(fifo) in listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:] if line}
    assert rows["ok"][3] == "finished"
    assert rows["odd"][3] == ("unreadable" if name == "events.jsonl" else "finished")
    replayed = cli("replay", str(runs / "odd"), "--visdom-url", "http://127.0.0.1:9")
    assert "not a regular file" in replayed.stderr and "Traceback" not in replayed.stderr
    if name == "events.jsonl":
        assert replayed.returncode == 2 and replayed.stderr.count("\n") == 1
    else:  # the config is only read for the env's name: a warning, then the server's error
        assert replayed.stderr.count("\n") == 2 and "not reachable" in replayed.stderr


def test_read_events_refuses_a_directory_and_a_device(tmp_path):
    (tmp_path / "d" / "events.jsonl").mkdir(parents=True)
    with pytest.raises(VizlabError, match="not a regular file"):
        list(read_events(tmp_path / "d"))
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "events.jsonl").symlink_to("/dev/zero")
    with pytest.raises(VizlabError, match="not a regular file"):
        list(read_events(tmp_path / "dev"))


# -- config.json of the wrong types ------------------------------------------------------------

def test_a_config_of_the_wrong_types_gives_one_line(tmp_path, visdom_server):
    runs = tmp_path / "runs"
    write_run(runs / "typed", run_events("typed", epochs=1, steps_per_epoch=10),
              {"name": "typed", "model": "mlp", "epochs": "8", "env": ["x"]})
    listed = cli("runs", "--runs-dir", str(runs))
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    assert listed.stderr.count("\n") == 1, listed.stderr
    assert "config.json: epochs is a string, not an integer; ignoring it" in listed.stderr
    assert "typed" in listed.stdout and "finished" in listed.stdout
    replayed = cli("replay", str(runs / "typed"), "--visdom-url", visdom_server.url)
    assert replayed.returncode == 0 and replayed.stderr.count("\n") == 1, replayed.stderr
    assert "/env/typed" in replayed.stdout  # the dir's name: the config's env is not trusted


def test_samples_are_capped_where_the_log_readers_are():
    from vizlab.config import build_config

    assert build_config("mlp", samples=MAX_IMAGES).samples == MAX_IMAGES
    with pytest.raises(VizlabError, match="--samples must be at most 1024"):
        build_config("mlp", samples=MAX_IMAGES + 1)
