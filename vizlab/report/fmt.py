"""Number formats shared by the terminal and the dashboard."""

from __future__ import annotations


def num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def pm(mean: float | None, spread: float | None) -> str:
    """A percentage with its spread over repeats, when there is one."""
    if mean is None:
        return "-"
    return f"{mean:.2f}%" + (f" ± {spread:.2f}" if spread else "")
