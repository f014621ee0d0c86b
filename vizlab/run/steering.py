"""The engine's side of steering: act on control commands at a step boundary.

The engine calls ``Helm.obey`` only when its inbox has something (vizlab.control), after the
step's losses were read back, so a pause, a checkpoint or a stop sees a consistent state. Every
command ends as one Control event, accepted or refused, in the run log.

Learning rate (``Rates``): ``lr x0.5`` trains at 0.5 times the configured schedule's rate from
the next step on (``lr x1`` is the schedule again); ``lr 0.003`` trains at 0.003 from the next step
on, whatever the schedule would do. Both are set once per command, never per step, on what the
optimizer and scheduler compute rates from: the param groups' ``lr``, OneCycleLR's
``initial_lr``/``max_lr``/``min_lr`` (a cycle between two equal rates is a fixed rate), the
cosine LambdaLR's ``base_lrs`` and ``lr_lambdas`` (a constant factor for a fixed rate).
``Progress.lr_factor``/``lr_fixed`` live in the checkpoint, and a resumed run, whose schedule is
built afresh from its config, sets them again: it keeps the changed rate.
"""

from __future__ import annotations

import warnings

from vizlab.control import Command, Inbox
from vizlab.events import Control
from vizlab.run_files import CHECKPOINT_FILE

PAUSE_POLL = 0.25  # seconds between looks at Ctrl-C while paused
_SCHEDULE_KEYS = ("initial_lr", "max_lr", "min_lr")  # what OneCycleLR computes rates from


def _constant(step: int) -> float:
    return 1.0


class Rates:
    """Sets an optimizer's rates from its configured schedule (as built from the config: ``lr``
    is the configured rate, the schedule's parameters the ones it was built with)."""

    def __init__(self, optimizer, scheduler, lr: float):
        self.optimizer, self.scheduler, self.lr = optimizer, scheduler, lr
        self.groups = [{k: g[k] for k in _SCHEDULE_KEYS if k in g}
                       for g in optimizer.param_groups]
        self.base_lrs = list(getattr(scheduler, "base_lrs", None) or [])
        self.lambdas = list(getattr(scheduler, "lr_lambdas", None) or [])
        self.eta_min = getattr(scheduler, "eta_min", None)

    def resume(self, progress) -> None:
        """Set a resumed run's changed rate again (its schedule was built from the config)."""
        if progress.lr_factor != 1.0 or progress.lr_fixed is not None:
            self.set(progress.lr_factor, progress.lr_fixed)

    def set(self, factor: float, fixed: float | None) -> float:
        """From the next step on: ``fixed``, or ``factor`` times the schedule. The next step's
        rate (of the first param group)."""
        sched, groups = self.scheduler, self.optimizer.param_groups

        def scaled(value):
            return fixed if fixed is not None else value * factor

        for group, orig in zip(groups, self.groups):
            for key in _SCHEDULE_KEYS:
                if key in orig:
                    group[key] = scaled(orig[key])
        if self.base_lrs:
            sched.base_lrs = [scaled(b) for b in self.base_lrs]
        if self.lambdas:  # LambdaLR: base rate times lambda(step); a fixed rate holds it at 1
            sched.lr_lambdas = [_constant] * len(self.lambdas) if fixed is not None \
                else list(self.lambdas)
        if self.eta_min is not None:
            sched.eta_min = scaled(self.eta_min)
        rates = [fixed] * len(groups) if fixed is not None else self._scheduled(factor)
        for group, rate in zip(groups, rates):
            group["lr"] = rate
        return groups[0]["lr"]

    def _scheduled(self, factor: float) -> list[float]:
        """The scaled schedule's rates for the next step (its parameters already scaled)."""
        sched = self.scheduler
        if sched is None:
            return [self.lr * factor] * len(self.groups)
        # Both schedules are closed-form in the step (vizlab.run.optim): OneCycleLR from the
        # groups' keys, LambdaLR from base_lrs; get_lr() gives the rate where the schedule stands.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "use get_last_lr()": that is the unscaled one
            return list(sched.get_lr())


class Helm:
    """Carries out commands for one engine; remembers whether it is paused."""

    def __init__(self, inbox: Inbox, rates: Rates):
        self.inbox, self.rates = inbox, rates
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
            if engine.checkpoints is None:
                return self._answer(engine, cmd, False, reason="this run writes no checkpoints")
            engine._checkpoint()
            return self._answer(engine, cmd, True,
                                new=str(engine.checkpoints.path / CHECKPOINT_FILE))
        if cmd.action == "lr":
            return self._rate(engine, cmd)
        return self._answer(engine, cmd, False,
                            reason=f"{cmd.action} applies to a comparison's variants")

    def _rate(self, engine, cmd: Command) -> bool:
        p = engine.progress
        old = engine.optimizer.param_groups[0]["lr"]
        p.lr_factor, p.lr_fixed = (cmd.rate, None) if cmd.factor else (1.0, cmd.rate)
        new = self.rates.set(p.lr_factor, p.lr_fixed)
        return self._answer(engine, cmd, True, old=old, new=new)

    def _state(self) -> str:
        return "paused" if self.paused else "running"

    def _answer(self, engine, cmd: Command, accepted: bool, old=None, new=None,
                reason: str = "") -> bool:
        p = engine.progress
        engine.reporter.handle(Control(
            action=cmd.action, accepted=accepted, step=p.global_step, epoch=p.epoch,
            source=cmd.source, origin=cmd.origin, command=cmd.describe(), old=old, new=new,
            lr_factor=p.lr_factor, lr_fixed=p.lr_fixed is not None, reason=reason,
            request=cmd.request, variant=cmd.variant))
        return False
