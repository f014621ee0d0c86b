"""What a run dir holds about its run: config.json, and the RunStarted event that opens its log."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from vizlab.events import RunStarted

CONFIG_FILE = "config.json"


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def run_started_event(engine, run_dir: Path, splits, device, world_size: int = 1,
                      resumed: bool = False) -> RunStarted:
    """The event that opens (or, resumed, reopens) a run's log."""
    cfg, p = engine.cfg, engine.progress
    return RunStarted(
        run=Path(run_dir).name, run_dir=str(run_dir), model=cfg.model,
        params=sum(t.numel() for t in engine.model.parameters()), device=str(device),
        dataset=cfg.dataset, classes=tuple(splits.classes), config=cfg.to_dict(),
        started=datetime.now().astimezone().isoformat(timespec="seconds"), epochs=cfg.epochs,
        steps_per_epoch=engine.steps_per_epoch, train_samples=len(splits.train_y),
        test_samples=len(splits.test_y), start_epoch=p.epoch, start_step=p.global_step,
        resumed=resumed, world_size=world_size)
