"""`vizlab control RUN COMMAND`: steer a running run from the terminal (vizlab.control)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from vizlab.errors import VizlabError
from vizlab.run_files import COMPARISON_JSON, EVENTS_FILE
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
    """Steer a running run: stop, pause, resume, change the learning rate, checkpoint; or drop
    a variant from a running comparison.

    \b
      vizlab control RUN stop          finish the step, checkpoint, end as "stopped"
      vizlab control RUN pause         wait at the next step; `resume` goes on
      vizlab control RUN lr 0.0005     this rate from the next step on (schedule or not)
      vizlab control RUN lr x0.5       half the configured schedule's rate (x1: the schedule)
      vizlab control RUN checkpoint    write a checkpoint now
      vizlab control COMPARISON drop VARIANT
                                       end that variant ("stopped"); the others go on

    RUN is a run directory, or the name of a run in the runs dir (COMPARISON likewise; VARIANT
    as the ranking names it, or one run's dir name). The command goes through the run dir
    (RUN/control/), so it works with --no-visdom and over SSH; the run acts on it at its next
    step and records it in its log. Exit status 2 when it is refused.
    """
    from vizlab.control import parse_command
    from vizlab.run.control_files import submit

    if timeout <= 0:
        raise VizlabError(f"--timeout must be positive; got {timeout}")
    run_dir = _find(run_dir, runs_dir)
    text = " ".join(words)
    command = parse_command(text)  # a bad command is refused here, before anything is written
    if (run_dir / COMPARISON_JSON).is_file():
        runs = _variant_runs(run_dir, command)
    elif command.action == "drop":
        raise VizlabError(f"{run_dir} is a single run: drop takes a variant out of a comparison "
                          "(give the comparison's dir; stop ends a run)")
    else:
        status = _ended(run_dir)
        if status:
            raise VizlabError(f"{run_dir} has ended ({status}); there is nothing to steer "
                              f"(continue it with `vizlab run --resume {run_dir}`)")
        runs = [run_dir]
    answers = _Answers(runs)
    request = submit(run_dir, text)
    _wait(answers, request, run_dir, text, timeout)


def _ended(run_dir: Path) -> str | None:
    """How the run ended, or None while it may still run."""
    from vizlab.commands.runs import summarize

    status = summarize(run_dir).status
    return None if status in ("unfinished", "empty") else status


def _variant_runs(comparison: Path, command) -> list[Path]:
    """The run dirs of the variant a ``drop`` names, those still training; VizlabError when
    the command is not a drop, no variant has that name, or its runs have ended."""
    from vizlab.compare.steering import matches
    from vizlab.names import is_safe_name
    from vizlab.report.runlog import read_json_object

    if command.action != "drop":
        raise VizlabError(f"{comparison} is a comparison: it takes `drop VARIANT`; "
                          f"{command.action} steers a single run")
    try:
        members = read_json_object(comparison / COMPARISON_JSON)["members"]
        members = [(str(m["variant"]), str(m["run_dir"])) for m in members]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VizlabError(f"cannot read {comparison / COMPARISON_JSON}: {exc}") from None
    named = [run for variant, run in members
             if matches(variant, run, command.variant) and is_safe_name(run)]
    if not named:
        known = ", ".join(dict.fromkeys(variant for variant, _ in members))
        raise VizlabError(f"no variant {command.variant!r} in {comparison} (its variants: "
                          f"{known})")
    live = [comparison / run for run in named if _ended(comparison / run) is None]
    if not live:
        raise VizlabError(f"{command.variant} has ended in {comparison}; there is nothing to "
                          "drop")
    return live


class _Answers:
    """The answers the runs write into their logs, each run's tail read from now on."""

    def __init__(self, runs: list[Path]):
        from vizlab.run.control_files import LogTail

        self.tails = {run: LogTail(run / EVENTS_FILE) for run in runs}
        self.got: dict[Path, dict] = {}
        self.ended: dict[Path, str] = {}

    def read(self, request: str) -> bool:
        """Take in what the logs say; True once every run has answered or ended."""
        for run, tail in self.tails.items():
            for record in tail.records():
                if record.get("event") == "control" and record.get("request") == request:
                    self.got.setdefault(run, record)
                elif record.get("event") == "run_ended" and run not in self.got:
                    self.ended[run] = str(record.get("status"))
        return all(run in self.got or run in self.ended for run in self.tails)


def _wait(answers: _Answers, request, run_dir: Path, text: str, timeout: float) -> None:
    from vizlab.run.control_files import withdraw

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers.read(request.id):
            if not answers.got:  # every run ended first: nobody will take the command
                withdraw(request)
            return _report(answers, text)
        time.sleep(POLL)
    if withdraw(request):
        raise VizlabError(f"no answer from {run_dir} in {timeout:g} s: is it still running? "
                          "(command withdrawn)")
    if answers.got:
        return _report(answers, text)
    raise VizlabError(f"{run_dir} took {text!r} but has not acted on it within {timeout:g} s "
                      "(it acts at its next step); its log will say when it does")


def _find(run_dir: Path, runs_dir: Path | None) -> Path:
    if run_dir.is_dir():
        return run_dir
    named = (runs_dir or Path("runs")) / run_dir
    if run_dir.name == str(run_dir) and named.is_dir():
        return named
    raise VizlabError(f"no run directory {run_dir}")


def _report(answers: _Answers, text: str) -> None:
    """One line per run that answered; exit status 2 if one refused or ended first."""
    from vizlab.report.control_pane import describe

    refused = [r for r in answers.got.values() if not r.get("accepted")]
    if refused:
        raise VizlabError(describe(refused[0]))
    if not answers.got:
        status = next(iter(answers.ended.values()))
        raise VizlabError(f"the run ended ({status}) before it acted on {text!r}")
    for record in answers.got.values():
        console().print(describe(record), markup=False, highlight=False)
