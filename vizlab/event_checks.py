"""Events read back from a file are untrusted: every field's type is checked, every size bounded.

A run log is a file anyone can edit, damage or hand over; `vizlab replay` and `vizlab runs` must
neither crash on it nor let a small line allocate gigabytes (an image 10^6 pixels high, a step
10^12 that the loss curve would index). ``check_fields`` checks a dict against a dataclass's
annotations (ints are ints, not bools or strings; floats accept ints; tuples hold what they
say; optional fields are None or that type) and the bounds below, before anything is built.

The bounds, in one place. Each is generous: a real run stays far below it (MNIST-family data:
28x28 images, 10 classes, 64 losses per chunk, 30 histogram bins), and together they keep the
memory a replay needs within a few hundred MB.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import types
from collections.abc import Callable
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

MAX_LINE = 4 * 2**20  # bytes in one run-log line (the largest real ones, image sets: ~50 kB)
MAX_STEP = 10_000_000  # global step numbers and epoch numbers: the loss curve keeps 16 B a step
MAX_CHUNK = 65_536  # losses (and rates) in one train_steps event; the engine sends 64 at most
MAX_CLASSES = 1_000  # classes: confusion-matrix side, per-class accuracies, label values
MAX_IMAGES = 1_024  # images in one event (`--samples` is capped at this)
MAX_SIDE = 1_024  # image height and width, in pixels
MAX_PIXELS = 2 * 2**20  # pixels of all the images of one event (1,024 MNIST digits: 0.8 M)
MAX_LAYERS = 4_096  # parameter tensors in one histograms event
MAX_BINS = 1_024  # bins of one histogram (the engine uses 30)
MAX_HIST_VALUES = 2**18  # bins of all the histograms of one event
MAX_TEXT = 65_536  # characters of one string: names, paths, messages, config values
MAX_KEYS = 256  # entries of a config dict
MAX_INT = 2**53  # any other integer: parameter counts, sample counts, test-set indices

# Integer ranges by field name (a name means the same in every event; tuple elements too).
_INT_RANGE = {
    "step": (0, MAX_STEP), "start_step": (0, MAX_STEP), "steps_per_epoch": (0, MAX_STEP),
    "epoch_steps": (0, MAX_STEP), "epoch": (0, MAX_STEP), "epochs": (0, MAX_STEP),
    "start_epoch": (0, MAX_STEP), "epochs_done": (0, MAX_STEP),
    "height": (1, MAX_SIDE), "width": (1, MAX_SIDE),
    "labels": (0, MAX_CLASSES - 1), "preds": (0, MAX_CLASSES - 1),
    "wrong_labels": (0, MAX_CLASSES - 1), "wrong_preds": (0, MAX_CLASSES - 1),
    "indices": (0, MAX_INT), "wrong_indices": (0, MAX_INT), "confusion": (0, MAX_INT),
    "params": (0, MAX_INT), "train_samples": (0, MAX_INT), "test_samples": (0, MAX_INT),
    "world_size": (1, MAX_INT),
}
# Tuple lengths by field name; any other tuple: MAX_CHUNK.
_LENGTH = {
    "classes": MAX_CLASSES, "per_class_acc": MAX_CLASSES, "confusion": MAX_CLASSES,
    "indices": MAX_IMAGES, "labels": MAX_IMAGES, "preds": MAX_IMAGES, "confidences": MAX_IMAGES,
    "wrong_indices": MAX_IMAGES, "wrong_labels": MAX_IMAGES, "wrong_preds": MAX_IMAGES,
}
_IMAGE_FIELDS = ("images", "wrong_images")  # encode_images() text: base64 of uint8 pixels
_B64_MAX = 4 * -(-MAX_PIXELS // 3)


def check_fields(cls, d: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """The keyword arguments that build ``cls`` from ``d`` (keys ``cls`` lacks are ignored),
    each checked against its annotation and bounds; ValueError with a short reason otherwise.
    Fields missing from ``d`` take the dataclass default (an error when there is none, unless
    ``partial``: then only the fields present are checked)."""
    kwargs = {}
    for name, (check, required) in _field_checks(cls).items():
        if name in d:
            kwargs[name] = check(name, d[name])
        elif required and not partial:
            raise ValueError(f"no {name!r}")
    consistent = None if partial else _CONSISTENT.get(getattr(cls, "kind", ""))
    if consistent is not None:
        consistent(kwargs)
    return kwargs


@cache
def _field_checks(cls) -> dict[str, tuple[Callable[[str, Any], Any], bool]]:
    hints = get_type_hints(cls)
    return {f.name: (_checker(hints[f.name]), f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls)}


def _checker(hint) -> Callable[[str, Any], Any]:
    """A function (field name, value) -> value to store, for one annotation."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            inner = _checker(rest[0])
            return lambda name, v: None if v is None else inner(name, v)
        if all(a in _SCALARS for a in rest):  # e.g. str | float | None (a control's old value)
            return _any_of(rest, nullable=len(rest) < len(args))
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _checker(args[0])

        def check_tuple(name, v):
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"{name} is {_kind(v)}, not a list")
            if len(v) > _LENGTH.get(name, MAX_CHUNK):
                raise ValueError(f"{name} has {len(v)} entries (at most "
                                 f"{_LENGTH.get(name, MAX_CHUNK)})")
            return tuple(item(name, x) for x in v)
        return check_tuple
    elif origin is None and hint in _SCALARS:
        return _SCALARS[hint]
    elif hint is dict or origin is dict:
        return _dict_check
    raise TypeError(f"no file check for the annotation {hint!r}")  # a new event type: add one


def _any_of(types_: list, nullable: bool) -> Callable[[str, Any], Any]:
    checks = [_SCALARS[t] for t in types_]
    names = " or ".join(t.__name__ for t in types_)

    def check_any(name, v):
        if v is None and nullable:
            return None
        for check in checks:
            try:
                return check(name, v)
            except ValueError:
                continue
        raise ValueError(f"{name} is {_kind(v)}, not {names}")
    return check_any


def _kind(v) -> str:
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object",
            type(None): "null"}.get(type(v), "a number")


def _int(name: str, v) -> int:
    if type(v) is not int:
        raise ValueError(f"{name} is {_kind(v)}, not an integer")
    lo, hi = _INT_RANGE.get(name, (-MAX_INT, MAX_INT))
    if not lo <= v <= hi:
        raise ValueError(f"{name} {v} is out of range ({lo}..{hi})")
    return v


def _float(name: str, v) -> float:
    if type(v) not in (int, float):  # NaN and infinities are allowed: a diverged run has them
        raise ValueError(f"{name} is {_kind(v)}, not a number")
    return v


def _bool(name: str, v) -> bool:
    if type(v) is not bool:
        raise ValueError(f"{name} is {_kind(v)}, not true or false")
    return v


def _str(name: str, v) -> str:
    if type(v) is not str:
        raise ValueError(f"{name} is {_kind(v)}, not a string")
    limit = _B64_MAX if name in _IMAGE_FIELDS else MAX_TEXT
    if len(v) > limit:
        raise ValueError(f"{name} has {len(v)} characters (at most {limit})")
    return v


_SCALARS = {int: _int, float: _float, bool: _bool, str: _str}


# -- dict fields: a config, histograms -------------------------------------------------------

def _config(name: str, v) -> dict:
    """A flat JSON object of settings: scalars, or short lists of scalars (widths)."""
    if type(v) is not dict:
        raise ValueError(f"{name} is {_kind(v)}, not an object")
    if len(v) > MAX_KEYS:
        raise ValueError(f"{name} has {len(v)} entries (at most {MAX_KEYS})")
    for key, value in v.items():
        _str(f"{name} key", key)
        for x in value if type(value) is list and len(value) <= MAX_KEYS else [value]:
            if x is not None and type(x) not in (bool, int, float, str):
                raise ValueError(f"{name}[{key!r}] is {_kind(x)}")
            if type(x) is str:
                _str(f"{name}[{key!r}]", x)
            if type(x) is int and abs(x) > MAX_INT:
                raise ValueError(f"{name}[{key!r}] is out of range")
    return v


def _layers(name: str, v) -> dict:
    """Histograms: {tensor name: {"weight": [counts], "weight_range": [lo, hi], "grad": ...}}."""
    if type(v) is not dict:
        raise ValueError(f"{name} is {_kind(v)}, not an object")
    if len(v) > MAX_LAYERS:
        raise ValueError(f"{name} has {len(v)} tensors (at most {MAX_LAYERS})")
    total = 0
    for layer, entry in v.items():
        _str(f"{name} key", layer)
        if type(entry) is not dict or not set(entry) <= {"weight", "grad", "weight_range",
                                                         "grad_range"}:
            raise ValueError(f"{name}[{layer!r}] is not a histogram entry")
        for key, values in entry.items():
            limit = 2 if key.endswith("_range") else MAX_BINS
            if type(values) is not list or len(values) > limit \
                    or (limit == 2 and len(values) != 2):
                raise ValueError(f"{name}[{layer!r}][{key!r}] is not a list of {limit} numbers"
                                 if limit == 2 else f"{name}[{layer!r}][{key!r}] is not a list "
                                 f"of at most {MAX_BINS} counts")
            for x in values:
                _float(f"{name}[{layer!r}][{key!r}]", x)
            total += len(values)
    if total > MAX_HIST_VALUES:
        raise ValueError(f"{name} has {total} bins in all (at most {MAX_HIST_VALUES})")
    return v


def _dict_check(name: str, v) -> dict:
    """Histograms by their own rules; any other dict field is a flat object, as a config."""
    return (_layers if name == "layers" else _config)(name, v)


# -- checks across the fields of one event kind ----------------------------------------------

def _pixels(name: str, text: str) -> int:
    """The number of bytes ``text`` (base64) decodes to; ValueError if it is not base64."""
    try:
        return len(base64.b64decode(text.encode("ascii"), validate=True))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError(f"{name} is not base64 image data") from None


def _sample_set(kw: dict) -> None:
    n = len(kw["labels"])
    if len(kw["indices"]) != n:
        raise ValueError("indices and labels differ in length")
    h, w = kw.get("height", 28), kw.get("width", 28)
    if n * h * w > MAX_PIXELS:
        raise ValueError(f"{n} images of {h}x{w} exceed {MAX_PIXELS} pixels")
    if _pixels("images", kw["images"]) != n * h * w:
        raise ValueError(f"images does not hold {n} images of {h}x{w}")


def _predictions(kw: dict) -> None:
    if len(kw["preds"]) != len(kw["confidences"]):
        raise ValueError("preds and confidences differ in length")
    wrong = [len(kw.get(k, ())) for k in ("wrong_indices", "wrong_labels", "wrong_preds")]
    if len(set(wrong)) != 1:
        raise ValueError("wrong_indices, wrong_labels and wrong_preds differ in length")
    n, size = wrong[0], _pixels("wrong_images", kw.get("wrong_images", ""))
    if (n == 0) != (size == 0) or (n and size % n) or size > MAX_PIXELS:
        raise ValueError(f"wrong_images does not hold {n} images")


def _epoch_end(kw: dict) -> None:
    confusion = kw["confusion"]
    if any(len(row) != len(confusion) for row in confusion):
        raise ValueError("confusion is not a square matrix")


def _train_steps(kw: dict) -> None:
    if kw["step"] < 1 or kw["step"] + len(kw["losses"]) - 1 > MAX_STEP:
        raise ValueError(f"steps {kw['step']}.. are out of range (1..{MAX_STEP})")


_CONSISTENT = {"sample_set": _sample_set, "predictions": _predictions, "epoch_end": _epoch_end,
               "train_steps": _train_steps}
