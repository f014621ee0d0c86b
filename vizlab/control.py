"""Steering a running run: the command vocabulary and the inbox the engine reads.

One vocabulary for both doors (the dashboard's control pane and `vizlab control`)::

    stop                 finish the step, write a checkpoint, end with status "stopped"
    pause | resume       wait at a step boundary (paused time is not training time) | go on
    lr RATE              the learning rate from the next step on: 0.003, 3e-3 (that rate, whatever
                         the schedule), or x0.5, *0.5 (a factor on the configured schedule's rate)
    checkpoint           write a checkpoint now
    drop VARIANT         in a comparison: end that variant ("stopped"); the others go on

Torch-free: the CLI checks a command here before it writes anything. Doors only ``put`` into an
``Inbox``; the engine looks at its ``pending`` attribute once per step (a plain attribute read,
no lock) and takes the commands at a step boundary.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from dataclasses import dataclass

from vizlab.errors import VizlabError

ACTIONS = ("stop", "pause", "resume", "lr", "checkpoint", "drop")
MAX_RATE = 100.0  # an absolute learning rate above this is a typo, not a choice
MAX_FACTOR = 1000.0
MAX_TEXT = 200  # characters of a command (and of its origin) kept; longer is refused
USAGE = "stop | pause | resume | lr RATE (0.001, 1e-3, x0.5) | checkpoint | drop VARIANT"

_FACTOR = re.compile(r"^\s*[x*×]\s*(\S+)\s*$", re.IGNORECASE)


class ControlError(VizlabError):
    """A command that is not in the vocabulary or has a bad value."""


@dataclass(frozen=True)
class Command:
    """One request, as parsed from a door. ``error`` is set for a request that could not be
    parsed: it still travels to the engine, which records the refusal in the run log."""

    action: str
    rate: float | None = None  # lr: the absolute rate, or the factor when ``factor``
    factor: bool = False
    variant: str = ""  # drop: the variant's name
    source: str = ""  # the door: "dashboard" | "terminal"
    origin: str = ""  # who and where from, for the log
    request: str = ""  # the request id a door waits on ("" when nobody waits)
    text: str = ""  # the command as it was given
    error: str = ""

    def describe(self) -> str:
        return self.text or self.action


def parse_command(text: str, *, source: str = "", origin: str = "",
                  request: str = "") -> Command:
    """``"lr x0.5"`` -> Command. Raises ControlError (one line, exit status 2) for bad input."""
    if not isinstance(text, str):
        raise ControlError("a command must be text")
    if len(text) > MAX_TEXT:
        raise ControlError(f"command too long ({len(text)} characters; at most {MAX_TEXT})")
    words = text.split()
    if not words:
        raise ControlError(f"no command given; expected {USAGE}")
    action, args = words[0].lower(), words[1:]
    if action not in ACTIONS:
        raise ControlError(f"unknown command {words[0]!r}; expected {USAGE}")
    kw = dict(source=_clip(source), origin=_clip(origin), request=_clip(request),
              text=" ".join(words))
    if action == "lr":
        if len(args) != 1:
            raise ControlError("lr takes one value: a rate (0.001, 1e-3) or a factor (x0.5)")
        rate, factor = parse_rate(args[0])
        return Command("lr", rate=rate, factor=factor, **kw)
    if action == "drop":  # a variant's name may have spaces ("activation=relu lr=0.1")
        if not args:
            raise ControlError("drop takes a variant's name (see the comparison's ranking)")
        return Command("drop", variant=" ".join(args), **kw)
    if args:
        raise ControlError(f"{action} takes no value; got {' '.join(args)!r}")
    return Command(action, **kw)


def refused(text: str, error: str, *, source: str = "", origin: str = "",
            request: str = "") -> Command:
    """A request that failed to parse, to be refused (and recorded) by the engine."""
    words = str(text).split()
    action = words[0].lower() if words and words[0].lower() in ACTIONS else "unknown"
    return Command(action, source=_clip(source), origin=_clip(origin), request=_clip(request),
                   text=_clip(str(text)), error=error)


def parse_rate(text: str) -> tuple[float, bool]:
    """``"3e-3"`` -> (0.003, False); ``"x0.5"`` -> (0.5, True)."""
    m = _FACTOR.match(text)
    value_text = m.group(1) if m else text.strip()
    try:
        value = float(value_text)
    except ValueError:
        raise ControlError(f"lr {text!r} is not a number; give a rate (0.001, 1e-3) "
                           "or a factor (x0.5)") from None
    limit = MAX_FACTOR if m else MAX_RATE
    what = "factor" if m else "rate"
    if not math.isfinite(value) or value <= 0 or value > limit:
        raise ControlError(f"lr {what} must be above 0 and at most {limit:g}; got {text!r}")
    return value, bool(m)


def _clip(text: str) -> str:
    return str(text)[:MAX_TEXT]


class Inbox:
    """Commands waiting for the next step boundary. Doors call ``put`` from any thread; the
    training thread reads ``pending`` (a plain attribute) each step and ``take``s when set."""

    def __init__(self) -> None:
        self.pending = False
        self._items: deque[Command] = deque()
        self._changed = threading.Condition()

    def put(self, command: Command) -> None:
        with self._changed:
            self._items.append(command)
            self.pending = True
            self._changed.notify_all()

    def take(self) -> list[Command]:
        with self._changed:
            items = list(self._items)
            self._items.clear()
            self.pending = False
            return items

    def wait(self, timeout: float) -> bool:
        """Block until a command is in (True) or ``timeout`` seconds pass (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: bool(self._items), timeout)
