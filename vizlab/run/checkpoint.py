"""Checkpoints: the training state written atomically, so a crash never leaves half a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vizlab.errors import VizlabError

CHECKPOINT_FILE = "checkpoint.pt"


class Checkpointer:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / CHECKPOINT_FILE

    def save(self, state: dict[str, Any]) -> None:
        import torch

        tmp = self.path.with_suffix(".pt.tmp")
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)  # atomic: readers see the old file or the new one

    def load(self) -> dict[str, Any]:
        import torch

        if not self.path.exists():
            raise VizlabError(f"no checkpoint in {self.path.parent} (nothing to resume)")
        try:
            return torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise VizlabError(f"cannot read checkpoint {self.path}: {exc}") from None
