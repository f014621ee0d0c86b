"""Number formats shared by the terminal and the dashboard."""

from __future__ import annotations

from typing import Optional


def num(value: Optional[float], digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}%"


def pm(mean: Optional[float], spread: Optional[float]) -> str:
    """A percentage with its spread over repeats, when there is one."""
    if mean is None:
        return "-"
    return f"{mean:.2f}%" + (f" ± {spread:.2f}" if spread else "")
