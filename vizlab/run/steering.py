"""The engine's side of steering: act on control commands at a step boundary.

The engine calls ``Helm.obey`` only when its inbox has something (vizlab.control), after the
step's losses were read back, so a pause, a checkpoint or a stop sees a consistent state. Every
command ends as one Control event, accepted or refused, in the run log.

Learning rate: the run keeps a factor on its configured schedule (``Progress.lr_factor``).
``lr x0.5`` sets that factor to 0.5; ``lr 0.003`` sets it so that the next step trains at 0.003
(with a schedule, the rate then follows the schedule's shape from there). The factor is applied
by rescaling what the optimizer and scheduler compute rates from, once, never per step: the
param groups' ``lr`` and OneCycleLR's ``initial_lr``/``max_lr``/``min_lr``, and the scheduler's
``base_lrs``. Both live in the checkpoint, so a resumed run keeps the changed rate.
"""

from __future__ import annotations

import math

from vizlab.control import Command, Inbox
from vizlab.events import Control

PAUSE_POLL = 0.25  # seconds between looks at Ctrl-C while paused
_SCHEDULE_KEYS = ("initial_lr", "max_lr", "min_lr")  # what OneCycleLR computes rates from


class Helm:
    """Carries out commands for one engine; remembers whether it is paused."""

    def __init__(self, inbox: Inbox):
        self.inbox = inbox
        self.paused = False

    def obey(self, engine) -> bool:
        """Act on the waiting commands, and wait here while paused; True when the run must
        stop (a stop command, or Ctrl-C while paused).

        In a distributed run every rank calls this at the same agreed step; the commands are
        rank 0's (the only rank that listens), handed to all by ``shard.agree_commands``."""
        shard = engine.shard
        listens = shard is None or shard.rank == 0
        while True:
            commands = self.inbox.take() if listens else []
            interrupted = engine.stop.requested
            if shard is not None:
                commands, interrupted = shard.agree_commands(commands, interrupted)
            if self.act(engine, commands):
                return True
            if not self.paused:
                return False
            if interrupted:  # Ctrl-C while paused
                return True
            if listens:
                self.inbox.wait(PAUSE_POLL)

    def act(self, engine, commands: list[Command]) -> bool:
        stop = False
        for command in commands:
            stop = self._one(engine, command) or stop
        return stop

    def refuse_left(self, engine, reason: str = "the run has ended") -> None:
        """Answer the commands that came too late to act on."""
        for command in self.inbox.take():
            self._answer(engine, command, False, reason=reason)

    # -- one command -----------------------------------------------------------------------
    def _one(self, engine, cmd: Command) -> bool:
        if cmd.error:
            return self._answer(engine, cmd, False, reason=cmd.error)
        if cmd.action == "stop":
            engine.stop_status = "stopped"
            self._answer(engine, cmd, True, old=self._state(), new="stopped")
            return True
        if cmd.action in ("pause", "resume"):
            if self.paused == (cmd.action == "pause"):
                return self._answer(engine, cmd, False, reason=f"already {self._state()}")
            old = self._state()
            self.paused = cmd.action == "pause"
            return self._answer(engine, cmd, True, old=old, new=self._state())
        if cmd.action == "checkpoint":
            if engine.checkpointer is None:
                return self._answer(engine, cmd, False, reason="this run writes no checkpoints")
            engine._checkpoint()
            return self._answer(engine, cmd, True, new=str(engine.checkpointer.path))
        if cmd.action == "lr":
            return self._rate(engine, cmd)
        return self._answer(engine, cmd, False,
                            reason=f"{cmd.action} applies to a comparison's variants")

    def _rate(self, engine, cmd: Command) -> bool:
        p, groups = engine.progress, engine.optimizer.param_groups
        old = groups[0]["lr"]
        if cmd.factor:
            factor = cmd.rate
        else:
            scheduled = old / p.lr_factor
            if not (scheduled > 0 and math.isfinite(scheduled)):
                return self._answer(engine, cmd, False, old=old, reason=(
                    "the schedule's rate is 0 here; give a factor (lr x2) instead"))
            factor = cmd.rate / scheduled
        ratio = factor / p.lr_factor
        for i, group in enumerate(groups):
            group["lr"] = cmd.rate if i == 0 and not cmd.factor else group["lr"] * ratio
            for key in _SCHEDULE_KEYS:
                if key in group:
                    group[key] *= ratio
        base = getattr(engine.scheduler, "base_lrs", None)
        if base is not None:
            engine.scheduler.base_lrs = [b * ratio for b in base]
        p.lr_factor = factor
        return self._answer(engine, cmd, True, old=old, new=groups[0]["lr"])

    def _state(self) -> str:
        return "paused" if self.paused else "running"

    def _answer(self, engine, cmd: Command, accepted: bool, old=None, new=None,
                reason: str = "") -> bool:
        p = engine.progress
        engine.reporter.handle(Control(
            action=cmd.action, accepted=accepted, step=p.global_step, epoch=p.epoch,
            source=cmd.source, origin=cmd.origin, command=cmd.describe(), old=old, new=new,
            lr_factor=p.lr_factor, reason=reason, request=cmd.request, variant=cmd.variant))
        return False
