"""The one Console, and warnings on stderr.

Everything vizlab shows in the terminal goes through ``console()``; library code never prints.
Warnings are single lines on stderr so they never garble a live Rich display's stdout.
"""

from __future__ import annotations

import sys
from functools import cache


@cache
def console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """One warning line on stderr."""
    try:
        sys.stderr.write(f"vizlab: warning: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
