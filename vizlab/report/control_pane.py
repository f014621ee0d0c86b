"""The dashboard's door for steering: a Visdom ``properties`` pane per run env.

The pane shows the run's live state (running/paused, the current learning rate, the last command)
and offers the commands: a text field for the rate and buttons for pause/resume, checkpoint and
stop. Visdom sends each edit to every connected Python client as a ``PropertyUpdate`` over its
websocket; ``command_from_update`` turns one into a vizlab.control Command. Visdom's traps:

- values arrive as strings (a button sends ``"clicked"``); the ``number`` field refuses
  negatives and ``1e-3``, so the rate is a text field, parsed by the control vocabulary;
- the pane does not update itself: it is drawn again after every command (the Control event);
- Visdom 0.2.4 keys event handlers by window id alone and sends every event to every client,
  so the window id is unique per env (``control_win``) and events for other envs are ignored;
- property ids are positions: a button is recognised by its row's name in the pane as the
  server holds it (``pane_data``), falling back to the fixed layout below.

Pure functions of events, like the other windows; ``ControlState`` folds events idempotently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from vizlab.control import MAX_TEXT, Command, ControlError, parse_command, refused
from vizlab.events import Control, Event, RunEnded, RunStarted, TrainSteps

# Row names, in order. Buttons' rows name their command; "learning rate" takes `lr VALUE`.
STATE, RATE, PAUSE, CHECKPOINT, STOP, LAST = ("state", "learning rate", "pause / resume",
                                              "checkpoint", "stop", "last command")
LAYOUT = (STATE, RATE, PAUSE, CHECKPOINT, STOP, LAST)
ENDED_LAYOUT = (STATE, RATE, LAST)  # no buttons once the run has ended (or with --no-control)


def control_win(env: str) -> str:
    """The pane's window id: unique per env (Visdom 0.2.4 routes events by window id alone)."""
    return "control-" + hashlib.sha256(env.encode("utf-8")).hexdigest()[:12]


def fmt_rate(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value or "-")


def describe(event: Control | dict) -> str:
    """One line for the terminal, the pane and `vizlab control`."""
    e = event if isinstance(event, Control) else _control_from_dict(event)
    who = f" ({e.origin or e.source})" if (e.origin or e.source) else ""
    variant = f" [{e.variant}]" if e.variant and e.variant not in e.command else ""
    if not e.accepted:
        return f"{e.command}{variant}: refused at step {e.step}: {e.reason}{who}"
    what = {
        "lr": f"rate {fmt_rate(e.old)} -> {fmt_rate(e.new)} from step {e.step + 1}"
              + (" (fixed)" if e.lr_fixed else f" (x{e.lr_factor:.4g} of the schedule)"),
        "pause": f"paused after step {e.step}",
        "resume": f"running again from step {e.step + 1}",
        "checkpoint": f"checkpoint written at step {e.step}",
        # a dropped variant's run answers `drop VARIANT` as the stop it is
        "stop": f"{'dropped' if e.variant else 'stopping'} after step {e.step}",
    }.get(e.action, "done")
    return f"{e.command}{variant}: {what}{who}"


def _control_from_dict(record: dict) -> Control:
    from vizlab.events import event_from_dict

    return event_from_dict({**record, "event": "control"})


@dataclass
class ControlState:
    """What the control pane shows, folded from the run's events. ``target`` is the env the pane
    is drawn into (its window id depends on it); without one, the run's own env."""

    target: str | None = None
    env: str | None = None
    enabled: bool = False
    state: str = "running"
    rate: float | None = None
    last: str = "-"
    ended: str | None = None
    # Visdom's text field keeps what the user typed until the value it is given changes: after
    # a refusal (or an edit of a row that only shows state) the fields get a trailing space more
    # or less, which puts the state back in the user's page.
    nudge: int = 0

    @property
    def win(self) -> str | None:
        return control_win(self.env) if self.env is not None else None

    def apply(self, event: Event) -> bool:
        """Take one event; True if the pane changed."""
        before = self._shown()
        if isinstance(event, RunStarted):
            config = event.config if isinstance(event.config, dict) else {}
            self.env = self.target or str(config.get("env") or config.get("name") or event.run)
            self.enabled = bool(config.get("control", True))
            self.state, self.ended = "running", None
            if not event.resumed:
                self.rate, self.last = config.get("lr"), "-"
        elif isinstance(event, TrainSteps) and event.lrs:
            self.rate = event.lrs[-1]
        elif isinstance(event, Control):
            self.last = describe(event)
            self.nudge += not event.accepted
            if event.accepted and event.action in ("pause", "resume", "stop"):
                self.state = str(event.new)
            if event.accepted and event.action == "lr":
                self.rate = event.new
        elif isinstance(event, RunEnded):
            self.ended = self.state = event.status
        return self._shown() != before

    def refresh(self) -> None:
        """Put the pane back the way it was in the user's page (see ``nudge``)."""
        self.nudge += 1

    def _shown(self) -> tuple:
        return (self.env, self.enabled, self.state, fmt_rate(self.rate), self.last, self.ended,
                self.nudge % 2)

    def packet(self, closed: str | None = None) -> dict | None:
        """The pane; ``closed``: how a run that logged no end is shown (a replay of a killed
        run says "unfinished"): without buttons, since nobody listens any more."""
        if self.env is None:
            return None
        live = self.enabled and self.ended is None and closed is None
        state = self.state if self.ended or closed is None else closed
        if not (live or self.ended or closed):
            state += " (steering off: --no-control)"
        pad = " " * (self.nudge % 2)
        rows = {
            STATE: {"type": "text", "value": state + pad},
            RATE: {"type": "text", "value": fmt_rate(self.rate) + pad},
            PAUSE: {"type": "button", "value": "Resume" if self.state == "paused" else "Pause"},
            CHECKPOINT: {"type": "button", "value": "Save now"},
            STOP: {"type": "button", "value": "Stop"},
            LAST: {"type": "text", "value": self.last[:2 * MAX_TEXT] + pad},
        }
        layout = LAYOUT if live else ENDED_LAYOUT
        title = "control" + ("" if live else " (read-only)")
        return {"data": [{"type": "properties",
                          "content": [{"name": name, **rows[name]} for name in layout]}],
                "opts": {"title": title, "width": 380, "height": 250}}


def command_from_update(message: Any, env: str, win: str, origin: str = "") -> Command | None:
    """The command a Visdom websocket message asks for: None when it is not a PropertyUpdate of
    this env's control pane, or an edit of a row that only shows state (the caller redraws)."""
    if not isinstance(message, dict) or message.get("event_type") != "PropertyUpdate":
        return None
    if message.get("eid") != env or message.get("target") != win:
        return None
    row = message.get("propertyId")
    if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < len(LAYOUT):
        return None
    name, label = _row(message.get("pane_data"), row)
    value = message.get("value")
    value = value if isinstance(value, str) else str(value)
    kw = dict(source="dashboard", origin=origin or f"dashboard (env {env})")
    if name == RATE:
        text = "lr " + value[:MAX_TEXT].strip()
    elif name == PAUSE:
        text = "resume" if label == "Resume" else "pause"
    elif name in (CHECKPOINT, STOP):
        text = name
    else:
        return None
    try:
        return parse_command(text, **kw)
    except ControlError as exc:
        return refused(text, str(exc), **kw)


def _row(pane_data: Any, row: int) -> tuple[str, str]:
    """(name, shown value) of row ``row`` as the server holds the pane; the fixed layout when
    the server sent no pane."""
    content = pane_data.get("content") if isinstance(pane_data, dict) else None
    if isinstance(content, list) and row < len(content) and isinstance(content[row], dict):
        item = content[row]
        return str(item.get("name", "")), str(item.get("value", ""))
    return LAYOUT[row], ""
