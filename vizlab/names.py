"""Names that become one path component: run names, comparison names, Visdom env names.

A run's name is its directory under ``--runs-dir`` and, by default, its Visdom env (a file the
server saves under its env dir), so one rule keeps every such name a single, harmless component.
Torch-free: the CLI checks names before anything is imported or written.
"""

from __future__ import annotations

import re

from vizlab.errors import VizlabError

MAX_NAME = 100
_SAFE = re.compile(r"[A-Za-z0-9._-]+")


def is_safe_name(value: object) -> bool:
    return (isinstance(value, str) and 0 < len(value) <= MAX_NAME and value not in (".", "..")
            and _SAFE.fullmatch(value) is not None)


def check_name(flag: str, value: str) -> str:
    """``value`` if it is one safe path component; otherwise one line for the user."""
    if not is_safe_name(value):
        raise VizlabError(f"{flag} {value!r}: use 1-{MAX_NAME} letters, digits, '.', '-' or '_' "
                          "(one directory name; not '.' or '..')")
    return value


def slug(text: str, fallback: str = "run") -> str:
    """A safe name made from any text (for default names built from a model or a variant)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:MAX_NAME]
    return cleaned if is_safe_name(cleaned) else fallback
