"""Comparison grids: options given several comma-separated values become axes; their product
is the list of variants. Torch-free, so bad axis values fail fast with one line."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vizlab.config import RunConfig, build_config
from vizlab.errors import VizlabError
from vizlab.names import MAX_NAME, slug

# Options that may be axes. Everything that decides *what data* a variant sees (dataset, limits,
# validation split, epochs, seed) is shared by every variant, for fairness.
AXES = ("model", "activation", "hidden", "optimizer", "lr", "momentum", "weight_decay",
        "batch_size", "schedule")
# How to read a number the command line gives as text.
NUMBERS: dict[str, Callable[[str], Any]] = {
    "lr": float, "momentum": float, "weight_decay": float, "batch_size": int, "epochs": int,
    "limit_train": int, "limit_test": int, "val_split": int, "seed": int, "threads": int,
    "samples": int,
}
DEFAULT_MAX_VARIANTS = 32


@dataclass(frozen=True)
class Variant:
    name: str  # legend label, e.g. "relu" or "activation=relu lr=0.1"
    axes: dict  # axis -> value
    repeat: int  # 0..repeats-1; the seed is cfg.seed
    cfg: RunConfig

    @property
    def slug(self) -> str:
        base = slug(self.name.replace("=", "-").replace(" ", "_"), fallback="variant")
        return f"{base[:MAX_NAME - 12]}-seed{self.cfg.seed}"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_axes(options: dict[str, Any]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Split CLI option strings into axes (several values) and shared settings (one value)."""
    axes: dict[str, list[Any]] = {}
    shared: dict[str, Any] = {}
    for name, raw in options.items():
        if raw is None:
            continue
        if not isinstance(raw, str) or "," not in raw:
            shared[name] = _convert(name, raw) if isinstance(raw, str) else raw
            continue
        if name not in AXES:
            raise VizlabError(f"{_flag(name)} cannot be a comparison axis: every variant shares it")
        values = [v.strip() for v in raw.split(",")]
        if any(v == "" for v in values):
            raise VizlabError(f"{_flag(name)} has an empty value in {raw!r}")
        converted = [_convert(name, v) for v in values]
        if len(set(map(str, converted))) != len(converted):
            raise VizlabError(f"{_flag(name)} lists a value twice: {raw!r}")
        axes[name] = converted
    return axes, shared


def _convert(name: str, value: str) -> Any:
    kind = NUMBERS.get(name)
    if kind is None:
        return value
    try:
        return kind(value)
    except ValueError:
        raise VizlabError(f"{_flag(name)}: {value!r} is not a valid "
                          f"{'number' if kind is float else 'integer'}") from None


def variant_name(combo: dict[str, Any], axes: dict[str, list[Any]]) -> str:
    if len(axes) == 1:
        return str(next(iter(combo.values())))
    return " ".join(f"{k.replace('_', '-')}={v}" for k, v in combo.items())


def expand(axes: dict[str, list[Any]], shared: dict[str, Any], repeats: int = 1,
           max_variants: int = DEFAULT_MAX_VARIANTS) -> list[Variant]:
    """Every combination of axis values (x repeats), each with a validated RunConfig."""
    if repeats < 1:
        raise VizlabError(f"--repeats must be positive; got {repeats}")
    if not axes:
        raise VizlabError("nothing to compare: give an option several comma-separated values, "
                          "e.g. --activation relu,tanh")
    count = 1
    for values in axes.values():
        count *= len(values)
    if count > max_variants:
        raise VizlabError(f"{count} variants is more than {max_variants}; "
                          f"narrow the axes or pass --max-variants {count}")
    base_seed = shared.get("seed") or 0
    variants = []
    names = list(axes)
    for values in itertools.product(*(axes[n] for n in names)):
        combo = dict(zip(names, values))
        settings = {k: v for k, v in {**shared, **combo}.items() if k != "model"}
        model = combo.get("model", shared.get("model"))
        for r in range(repeats):
            cfg = build_config(model, **{**settings, "seed": base_seed + r})
            variants.append(Variant(variant_name(combo, axes), combo, r, cfg))
    return variants
