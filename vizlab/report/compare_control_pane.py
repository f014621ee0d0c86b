"""The comparison's control pane: one row per variant, with a Drop button while it trains.

Drawn into the comparison's env under the same per-env window id as a run's control pane
(vizlab.report.control_pane.control_win: Visdom 0.2.4 routes events by window id alone). Pressing
a variant's Drop button asks for ``drop VARIANT`` (vizlab.compare.steering); the row then shows
how the variant ended. The first row sums the comparison up, the last shows the last command
(accepted or refused). Once the comparison has ended, or with --no-control, the pane has no
buttons.

A row's variant is read from its name in the pane as the server holds it (``pane_data``), and only
a name among the comparison's variants is acted on: the page is not trusted to name one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vizlab.control import MAX_TEXT, Command
from vizlab.events import Control, RunEnded, RunStarted
from vizlab.report.control_pane import describe

HEADER, LAST = "comparison", "last command"


@dataclass
class CompareControlState:
    """What the pane shows, folded from the variants' events. ``names``: the variants in legend
    order, ``seeds`` each one's seeds; ``enabled``: the comparison takes commands."""

    names: tuple[str, ...]
    seeds: dict[str, list[int]]
    enabled: bool = True
    status: dict[tuple[str, int], str] = field(default_factory=dict)  # (variant, seed) -> status
    last: str = "-"
    nudge: int = 0  # see ControlState.nudge: a redraw that puts back what the user typed over

    def apply(self, name: str | None, seed: int | None, event) -> bool:
        """Take one event of a variant's run (``name`` None: the comparison's own answer to a
        command no run could take); True if the pane changed."""
        if not isinstance(event, (Control, RunStarted, RunEnded)):
            return False  # step chunks and epochs (nearly every event) change nothing here
        before = self._shown()
        if isinstance(event, Control):
            self.last = describe(event)
            self.nudge += not event.accepted
        elif name is not None and isinstance(event, RunStarted):
            self.status[(name, seed)] = "training"
        elif name is not None and isinstance(event, RunEnded):
            self.status[(name, seed)] = event.status
        return self._shown() != before

    def refresh(self) -> None:
        self.nudge += 1

    def variant_status(self, name: str) -> str:
        """"training" while any of its runs trains; else how its runs ended."""
        found = [self.status.get((name, seed), "waiting") for seed in self.seeds[name]]
        if "training" in found:
            return "training"
        return ", ".join(dict.fromkeys(found))

    def _shown(self) -> tuple:
        return (tuple(self.variant_status(n) for n in self.names), self.last, self.nudge % 2)

    def packet(self, closed: str | None = None) -> dict:
        """The pane; ``closed``: the comparison has ended (its status), nobody listens."""
        live = self.enabled and closed is None
        pad = " " * (self.nudge % 2)
        statuses = {n: self.variant_status(n) for n in self.names}
        training = sum(s in ("training", "waiting") for s in statuses.values())
        summary = closed or f"training: {training} of {len(self.names)} variants"
        if not self.enabled and closed is None:
            summary += " (steering off: --no-control)"
        rows = [{"name": HEADER, "type": "text", "value": summary + pad}]
        for name in self.names:
            if live and statuses[name] in ("training", "waiting"):
                rows.append({"name": name, "type": "button", "value": "Drop"})
            else:
                rows.append({"name": name, "type": "text", "value": statuses[name] + pad})
        rows.append({"name": LAST, "type": "text", "value": self.last[:2 * MAX_TEXT] + pad})
        title = "control" + ("" if live else " (read-only)")
        return {"data": [{"type": "properties", "content": rows}],
                "opts": {"title": title, "width": 380,
                         "height": min(120 + 32 * len(self.names), 600)}}


def command_from_update(message: Any, env: str, win: str, names: tuple[str, ...],
                        origin: str = "") -> Command | None:
    """``drop VARIANT`` when ``message`` is a press of a variant's Drop button in this env's
    comparison pane; None for anything else (an edit of a row that only shows state included:
    the caller draws the pane again)."""
    if not isinstance(message, dict) or message.get("event_type") != "PropertyUpdate":
        return None
    if message.get("eid") != env or message.get("target") != win:
        return None
    row = message.get("propertyId")
    if not isinstance(row, int) or isinstance(row, bool) or not 1 <= row <= len(names):
        return None
    content = message.get("pane_data", {})
    content = content.get("content") if isinstance(content, dict) else None
    if isinstance(content, list) and row < len(content) and isinstance(content[row], dict):
        name, kind = content[row].get("name"), content[row].get("type")
    else:  # the server sent no pane: the fixed layout (the header, then the variants)
        name, kind = names[row - 1], "button"
    if kind != "button" or name not in names:
        return None
    return Command("drop", variant=name, source="dashboard", text=f"drop {name}",
                   origin=origin or f"dashboard (env {env})")
