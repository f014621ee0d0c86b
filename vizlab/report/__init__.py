"""Reporters: where training events go.

A sink has two methods, ``handle(event)`` and ``close(status)``. ``Reporter`` fans one event out to
many sinks in order (put the run log first: it is the durable record). A sink must never raise into
the training loop for a problem of its own (a dead server, a full disk is the exception: the run
log raises, because losing the record is worse than stopping).

Use it from your own training loop::

    from vizlab.report import Reporter
    from vizlab.report.visdom_sink import VisdomSink
    from vizlab.events import TrainSteps
    reporter = Reporter([VisdomSink(env="my-run")])
    reporter.handle(TrainSteps(epoch=1, step=1, losses=(0.9,), lrs=(0.1,)))
    reporter.close("finished")
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from vizlab.events import Event

__all__ = ["NullSink", "Reporter", "Sink"]


@runtime_checkable
class Sink(Protocol):
    def handle(self, event: Event) -> None: ...

    def close(self, status: str = "finished") -> None: ...


class NullSink:
    """Takes every event and does nothing: the reporter when nothing should be reported."""

    def handle(self, event: Event) -> None:
        pass

    def close(self, status: str = "finished") -> None:
        pass


class Reporter:
    """Fans events out to sinks, in the order given."""

    def __init__(self, sinks: Iterable[Sink] = ()):
        self.sinks = list(sinks)

    def handle(self, event: Event) -> None:
        for sink in self.sinks:
            sink.handle(event)

    def close(self, status: str = "finished") -> None:
        # Close in reverse: the run log (first) closes last, after every other sink has drained.
        errors = []
        for sink in reversed(self.sinks):
            try:
                sink.close(status)
            except Exception as exc:  # close every sink even if one fails
                errors.append(exc)
        if errors:
            raise errors[0]
