"""Has the Visdom server kept what the sink drew? One small window's digest says.

Before each flush the sink reads back a window written since its last save of the env and
compares its digest with the one it kept: a server restarted in between (empty, or holding an
older saved env) fails the check, and the sink redraws every window. The window must have been
written after the save ("fresh"): a server restarted from that save would hold an older copy.
Small windows read back fast, so the smallest written is kept. (It reads the window itself:
Visdom 0.3 removed the ``win_hash`` endpoint.)
"""

from __future__ import annotations

from collections.abc import Callable

# Windows by typical size, smallest first: the cheapest to read back.
SMALL_FIRST = ("test_acc", "test_loss", "run_card", "per_class", "weights", "gradients",
               "confusion", "predictions", "misclassified", "samples", "lr", "train_loss")


def size_rank(win: str) -> int:
    """Small windows first; windows of other boards after the known ones."""
    return SMALL_FIRST.index(win) if win in SMALL_FIRST else len(SMALL_FIRST)


class Sentinel:
    """The window kept as proof, with its digest. ``digest(win)`` reads a window's digest from
    the server, ``draw(win, packet)`` draws one: the sink's bounded requests."""

    def __init__(self) -> None:
        self.win: str | None = None
        self.digest: str | None = None
        self.fresh = False

    def forget(self) -> None:
        self.win = None

    def intact(self, digest: Callable[[str], str | None]) -> bool:
        """False when the server no longer holds the kept window as it was drawn."""
        return self.win is None or digest(self.win) == self.digest

    def keep(self, written: list[str], saved: bool, board, digest, draw) -> None:
        """After a flush that wrote ``written`` (and ``saved`` the env): keep a fresh window."""
        if saved:  # the run card is small: draw it again after the save
            card = board.pane("run_card")
            if card is not None:
                draw("run_card", card.packet)
                self._set("run_card", digest("run_card"), True)
            elif written:  # no run card (a bare training loop): stale until the next write
                win = min(written, key=size_rank)
                self._set(win, digest(win), False)
            elif self.win is not None:
                self.fresh = False
        elif written and (self.win is None or not self.fresh or self.win in written):
            win = min(written, key=size_rank)
            self._set(win, digest(win), True)

    def _set(self, win: str, digest: str | None, fresh: bool) -> None:
        self.win, self.digest, self.fresh = win, digest, fresh
