"""Steering a comparison: ``drop VARIANT`` ends that variant ("stopped"); the others go on.

The comparison's doors (its dashboard pane, `vizlab control COMPARISON drop VARIANT` through the
comparison dir's control folder) put commands into the comparison's inbox. The comparison looks
at it between lockstep rounds (a flag read) and hands each run of the dropped variant a ``stop``
in its own engine's inbox, so the run ends as any stopped run does: at its next step boundary,
checkpointed, status "stopped", the command (``drop VARIANT``) answered in its own log. Variants
are named as in the ranking, or by run dir (one seed of a variant with repeats).

Under --nproc rank 0 alone listens, and the relay carries each command to the ranks that train
the variant (vizlab.compare.relay); each rank drops its own runs of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from vizlab.control import Command, Inbox
from vizlab.events import Control


def matches(variant: str, run_dir: str, wanted: str) -> bool:
    """Does ``wanted`` (the VARIANT a door names) mean this run: its variant's name (every seed)
    or the run's own dir name (one seed)."""
    return wanted in (variant, run_dir)


class ComparisonHelm:
    """Carries out a comparison's commands on its runs (``entries``, vizlab.compare.comparison).

    ``answer`` takes the Control event of a command that no run can answer (not a drop, or no
    such variant): the terminal and the dashboard show it."""

    def __init__(self, inbox: Inbox, answer: Callable[[Control], None]):
        self.inbox, self.answer = inbox, answer

    def obey(self, entries) -> None:
        for command in self.inbox.take():
            self._one(entries, command)

    def _one(self, entries, cmd: Command) -> None:
        if cmd.error or cmd.action != "drop":
            reason = cmd.error or (f"a comparison takes `drop VARIANT`; {cmd.action} steers a "
                                   "single run")
            return self.answer(_control(cmd, False, reason=reason))
        mine = [e for e in entries if matches(e.variant.name, e.variant.slug, cmd.variant)]
        if not mine:
            return self.answer(_control(cmd, False, reason=f"no variant {cmd.variant!r} here"))
        live = [e for e in mine if e.ended is None]
        for entry in live:  # each run stops at its next step and answers in its own log
            entry.inbox.put(replace(cmd, action="stop"))
        if not live:  # ended already: the refusal goes into the (first) run's own log
            entry = mine[0]
            p = entry.engine.progress
            entry.engine.reporter.handle(_control(
                cmd, False, step=p.global_step, epoch=p.epoch,
                reason=f"{cmd.variant} has ended ({entry.ended.status})"))


def _control(cmd: Command, accepted: bool, step: int = 0, epoch: int = 0,
             reason: str = "") -> Control:
    return Control(action=cmd.action, accepted=accepted, step=step, epoch=epoch,
                   source=cmd.source, origin=cmd.origin, command=cmd.describe(), reason=reason,
                   request=cmd.request, variant=cmd.variant)
