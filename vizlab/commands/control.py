"""`vizlab control RUN COMMAND`: steer a running run from the terminal (vizlab.control)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from vizlab.errors import VizlabError
from vizlab.term import console

POLL = 0.1


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.argument("words", metavar="COMMAND [VALUE]", nargs=-1, required=True)
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to look when RUN is a run name (default ./runs).")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the run's answer.")
def control(run_dir, words, runs_dir, timeout):
    """Steer a running run: stop, pause, resume, change the learning rate, checkpoint.

    \b
      vizlab control RUN stop          finish the step, checkpoint, end as "stopped"
      vizlab control RUN pause         wait at the next step; `resume` goes on
      vizlab control RUN lr 0.0005     this rate from the next step on (schedule or not)
      vizlab control RUN lr x0.5       half the configured schedule's rate (x1: the schedule)
      vizlab control RUN checkpoint    write a checkpoint now

    RUN is a run directory, or the name of a run in the runs dir. The command goes through
    the run dir (RUN/control/), so it works with --no-visdom and over SSH; the run acts on it
    at its next step and records it in its log. Exit status 2 when it is refused.
    """
    from vizlab.commands.runs import summarize
    from vizlab.report.runlog import EVENTS_FILE
    from vizlab.run.control_files import LogTail, submit, withdraw

    if timeout <= 0:
        raise VizlabError(f"--timeout must be positive; got {timeout}")
    run_dir = _find(run_dir, runs_dir)
    if (run_dir / "comparison.json").is_file():
        raise VizlabError(f"{run_dir} is a comparison: `vizlab control` steers single runs "
                          "(a comparison stops with Ctrl-C)")
    status = summarize(run_dir).status
    if status not in ("unfinished", "empty"):
        raise VizlabError(f"{run_dir} has ended ({status}); there is nothing to steer "
                          f"(continue it with `vizlab run --resume {run_dir}`)")
    text = " ".join(words)
    tail = LogTail(run_dir / EVENTS_FILE)
    request = submit(run_dir, text)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in tail.records():
            if record.get("event") == "control" and record.get("request") == request.id:
                return _report(record)
            if record.get("event") == "run_ended":
                withdraw(request)
                raise VizlabError(f"the run ended ({record.get('status')}) before it acted "
                                  f"on {text!r}")
        time.sleep(POLL)
    if withdraw(request):
        raise VizlabError(f"no answer from {run_dir} in {timeout:g} s: is it still running? "
                          "(command withdrawn)")
    raise VizlabError(f"{run_dir} took {text!r} but has not acted on it within {timeout:g} s "
                      "(it acts at its next step); its log will say when it does")


def _find(run_dir: Path, runs_dir: Path | None) -> Path:
    if run_dir.is_dir():
        return run_dir
    named = (runs_dir or Path("runs")) / run_dir
    if run_dir.name == str(run_dir) and named.is_dir():
        return named
    raise VizlabError(f"no run directory {run_dir}")


def _report(record: dict) -> None:
    from vizlab.report.control_pane import describe

    line = describe(record)
    if not record.get("accepted"):
        raise VizlabError(line)
    console().print(line, markup=False, highlight=False)
