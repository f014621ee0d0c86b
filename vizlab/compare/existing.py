"""Comparisons of runs that already exist: `vizlab compare RUN_DIR_OR_NAME ...`.

Each argument is a run dir or a comparison dir (its variants come along, seeds and all), given as
a path or as a name under the runs dir. Nothing is trained. The runs' configs say whether the
comparison is controlled: runs that differ in what data they saw (dataset, data dir, limits,
validation split, epochs) or in their seeds cannot be compared fairly, so those settings are listed and the
comparison is marked as not controlled. Options that differ and may be axes of a training
comparison (activation, lr, ...) become the comparison's axes.

Run dirs are read through vizlab.report.replay.read_config and vizlab.report.runlog for now (a
``RunDir`` owner class will take their place).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vizlab.compare.variants import AXES
from vizlab.errors import VizlabError
from vizlab.events import EpochEnd, Event, RunEnded, RunStarted
from vizlab.run_files import COMPARISON_JSON

# What decides which data a run saw (and so must match for a fair comparison). Two data dirs
# may hold the same files, but they may not: a differing one is listed too.
DATA_SHAPING = ("dataset", "data_dir", "limit_train", "limit_test", "val_split", "epochs")
RUN_FILES = ("config.json", "events.jsonl")
MAX_MEMBERS = 256


@dataclass(frozen=True, eq=False)  # hashed by identity: one member, one run
class Member:
    """One existing run in the comparison."""

    variant: str
    seed: int
    run_dir: Path
    config: dict
    axes: dict


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in (*RUN_FILES, COMPARISON_JSON))


def resolve(ref: str, runs_dir: Path) -> Path | None:
    """The run or comparison dir ``ref`` names (a path, or a name under ``runs_dir``)."""
    path = Path(ref)
    if is_run_dir(path):
        return path
    if path.name == ref and ref not in (".", "..") and is_run_dir(runs_dir / ref):
        return runs_dir / ref
    return None


def names_runs(refs: tuple[str, ...], runs_dir: Path) -> bool:
    """Whether the command's arguments name existing runs (else they name models to train).

    A model name, a user model (``file.py:Class``) or a comma-separated list of models is never a
    run; anything else that resolves to a run dir is."""
    from vizlab.models import MODELS

    def model_like(ref: str) -> bool:
        return ref in MODELS or ":" in ref or "," in ref

    if len(refs) == 1 and model_like(refs[0]):
        return False
    return len(refs) > 1 or resolve(refs[0], runs_dir) is not None


def _config(run_dir: Path) -> dict:
    from vizlab.report.replay import read_config

    if not (run_dir / "events.jsonl").is_file():
        raise VizlabError(f"{run_dir} has no run log (events.jsonl): not a vizlab run")
    return read_config(run_dir)


def _comparison_members(directory: Path) -> list[tuple[str, int, Path, dict]]:
    try:
        data = json.loads((directory / COMPARISON_JSON).read_text())
        members = data["members"]
        out = []
        for m in members:
            variant, seed, run_dir = m["variant"], m["seed"], m["run_dir"]
            if not (isinstance(variant, str) and isinstance(seed, int)
                    and isinstance(run_dir, str)):
                raise TypeError("a member needs a variant name, an integer seed and a run dir")
            out.append((variant, seed, directory / run_dir,
                        m.get("axes") if isinstance(m.get("axes"), dict) else {}))
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VizlabError(f"cannot read {directory / COMPARISON_JSON}: {exc}") from None


def load_members(refs: tuple[str, ...], runs_dir: Path) -> list[Member]:
    """Every run the arguments name, with its variant name, seed and config; VizlabError for an
    argument that names no run, a run named twice, or fewer than two runs."""
    dirs = []
    for ref in refs:
        path = resolve(ref, runs_dir)
        if path is None:
            where = f" (nor in {runs_dir})" if Path(ref).name == ref else ""
            raise VizlabError(f"no run directory {ref!r}{where}; give two or more run dirs or "
                              f"names, or one model (several as one argument: mlp,cnn)")
        dirs.append(path)
    several = len(dirs) > 1
    raw: list[tuple[str, int, Path, dict]] = []
    for path in dirs:
        if (path / COMPARISON_JSON).is_file():
            prefix = f"{path.name}/" if several else ""
            raw += [(prefix + v, s, d, a) for v, s, d, a in _comparison_members(path)]
        else:
            raw.append((path.name, -1, path, {}))
    seen = set()
    members = []
    for variant, seed, run_dir, axes in raw:
        key = run_dir.resolve()
        if key in seen:
            raise VizlabError(f"{run_dir} is named twice")
        seen.add(key)
        config = _config(run_dir)
        if seed < 0:  # a single run: its own seed
            seed = config.get("seed") if isinstance(config.get("seed"), int) else 0
        members.append(Member(variant, seed, run_dir, config, axes))
    if len(members) < 2:
        raise VizlabError("a comparison needs two or more runs")
    if len(members) > MAX_MEMBERS:
        raise VizlabError(f"{len(members)} runs is more than {MAX_MEMBERS}")
    return _with_axes(members)


def _with_axes(members: list[Member]) -> list[Member]:
    """Give single runs the options that differ between the runs as their axes."""
    varying = [k for k in AXES
               if len({json.dumps(m.config.get(k), sort_keys=True) for m in members}) > 1]
    return [m if m.axes else Member(m.variant, m.seed, m.run_dir, m.config,
                                    {k: m.config.get(k) for k in varying})
            for m in members]


def differences(members: list[Member]) -> dict[str, list[Any]]:
    """The data-shaping settings that differ between the runs, and the seeds when variants were
    not run on the same seeds (then per-seed pairing, and the paired test, is partial)."""
    out: dict[str, list[Any]] = {}
    for key in DATA_SHAPING:
        values = list(dict.fromkeys(json.dumps(m.config.get(key)) for m in members))
        if len(values) > 1:
            out[key] = [json.loads(v) for v in values]
    seeds: dict[str, set[int]] = {}
    for m in members:
        seeds.setdefault(m.variant, set()).add(m.seed)
    if len({frozenset(s) for s in seeds.values()}) > 1:
        out["seeds"] = [f"{v}: {','.join(map(str, sorted(s)))}" for v, s in seeds.items()]
    return out


def activations(members: list[Member]) -> tuple[str, ...]:
    """The activations compared, when activation is one of the axes."""
    from vizlab.models import ACTIVATIONS

    if not any("activation" in m.axes for m in members):
        return ()
    return tuple(dict.fromkeys(m.config["activation"] for m in members
                               if m.config.get("activation") in ACTIVATIONS))


@dataclass
class Record:
    """What one member's log has said so far."""

    epochs: list = field(default_factory=list)
    ended: RunEnded | None = None
    params: int = 0

    def take(self, event: Event) -> None:
        if isinstance(event, EpochEnd):
            self.epochs.append(event)
        elif isinstance(event, RunEnded):
            self.ended = event
        elif isinstance(event, RunStarted) and isinstance(event.params, int):
            self.params = event.params


def manifest(members: list[Member], env: str, target: float,
             found: dict[str, list[Any]]) -> dict[str, Any]:
    """comparison.json without its rows: what `vizlab replay` and `vizlab runs` read."""
    from datetime import datetime

    from vizlab.compare.ranking import METHOD

    return {"started": datetime.now().astimezone().isoformat(timespec="seconds"),
            "wall_time": None, "env": env, "axes": sorted({k for m in members for k in m.axes}),
            "sequential": False, "target": target, "statistics": METHOD,
            "controlled": not found, "differences": found, "existing_runs": True,
            "activations": list(activations(members)),
            "members": [{"variant": m.variant, "seed": m.seed,
                         "run_dir": str(m.run_dir.resolve()), "axes": m.axes} for m in members]}


def results(members: list[Member], records: dict[Member, Record], target: float) -> list[dict]:
    """The ranking rows (vizlab.compare.ranking.rank) of what the logs said."""
    from vizlab.compare.ranking import RunRecord, VariantRuns, rank

    variants = []
    for name in dict.fromkeys(m.variant for m in members):
        mine = [m for m in members if m.variant == name]
        variants.append(VariantRuns(name, mine[0].axes, tuple(
            RunRecord(m.seed, str(m.run_dir),
                      records[m].ended.status if records[m].ended else "unfinished",
                      tuple(records[m].epochs), records[m].params) for m in mine)))
    return rank(variants, target)


def default_dataset(members: list[Member]) -> str:
    dataset = members[0].config.get("dataset")
    return dataset if isinstance(dataset, str) else "mnist"
