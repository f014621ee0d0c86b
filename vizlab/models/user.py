"""A user's own model: ``path/to/file.py:ClassName`` or ``package.module:ClassName``.

The class is imported, built with no arguments and checked once on a (2, 1, 28, 28) batch, so
a mistake shows up as one clear line before training starts, not as a traceback mid-epoch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType

from vizlab.errors import VizlabError

__all__ = ["CHECK_SHAPE", "load_user_model"]

CHECK_SHAPE = (2, 1, 28, 28)
FORMS = "path/to/file.py:ClassName or package.module:ClassName"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    detail = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _is_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


def _import_file(target: str) -> ModuleType:
    path = Path(target).expanduser()
    if not path.is_file():
        raise VizlabError(f"no such file: {target} (expected {FORMS})")
    path = path.resolve()
    # A stable, unique module name, so two files called model.py do not collide.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"vizlab_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise VizlabError(f"cannot import {target}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up here
    # The file's folder goes on sys.path while it runs, so it can import its neighbours.
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise VizlabError(f"could not import {target}: {_first_line(exc)}") from exc
    finally:
        if str(path.parent) in sys.path:
            sys.path.remove(str(path.parent))
    return module


def _import_module(target: str) -> ModuleType:
    # The console script does not put the working directory on sys.path (python -m does);
    # append it so a package next to the user is found, without shadowing installed ones.
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        return importlib.import_module(target)
    except Exception as exc:
        raise VizlabError(f"could not import module {target!r}: {_first_line(exc)}") from exc
    finally:
        if added:
            sys.path.remove(cwd)


def _modules_in(module: ModuleType) -> list[str]:
    from torch import nn

    return sorted(name for name, obj in vars(module).items()
                  if inspect.isclass(obj) and issubclass(obj, nn.Module)
                  and obj.__module__ == module.__name__)


def load_user_model(spec: str):
    """Import ``spec``'s class, build it with no arguments and check it maps
    (2, 1, 28, 28) images to (2, 10) logits. Every failure is one-line ``VizlabError``."""
    import torch
    from torch import nn

    target, sep, class_name = spec.rpartition(":")
    if not sep or not target or not class_name:
        raise VizlabError(f"a model of your own is given as {FORMS}; got {spec!r}")
    module = _import_file(target) if _is_path(target) else _import_module(target)

    obj = getattr(module, class_name, None)
    if obj is None:
        found = _modules_in(module)
        hint = f"; it defines {', '.join(found)}" if found else "; it defines no nn.Module"
        raise VizlabError(f"{target} has no {class_name!r}{hint}")
    if inspect.isclass(obj) and not issubclass(obj, nn.Module):
        raise VizlabError(f"{spec} is not a torch.nn.Module subclass")
    if not callable(obj):
        raise VizlabError(f"{spec} is a {type(obj).__name__}, not a torch.nn.Module class")

    try:
        model = obj()
    except Exception as exc:
        raise VizlabError(f"{class_name}() failed (vizlab builds it with no arguments): "
                          f"{_first_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise VizlabError(f"{class_name}() returned a {type(model).__name__}, "
                          "not a torch.nn.Module")
    if not any(p.requires_grad for p in model.parameters()):
        raise VizlabError(f"{class_name} has no trainable parameters")

    _check_forward(model, class_name, torch)
    return model


def _check_forward(model, class_name: str, torch) -> None:
    """One zero batch in eval mode (so no batch-norm statistics move); modes restored after."""
    reference = next(model.parameters())
    batch = torch.zeros(CHECK_SHAPE, device=reference.device)
    shape_text = "(" + ", ".join(map(str, CHECK_SHAPE)) + ")"
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            out = model(batch)
    except Exception as exc:
        raise VizlabError(f"{class_name} failed on a {shape_text} batch of images: "
                          f"{_first_line(exc)}") from exc
    finally:
        for module, training in modes:
            module.training = training
    if not isinstance(out, torch.Tensor):
        raise VizlabError(f"{class_name} returned a {type(out).__name__} for a {shape_text} "
                          "batch; it must return one tensor of (2, 10) logits")
    if tuple(out.shape) != (CHECK_SHAPE[0], 10):
        got = "(" + ", ".join(map(str, out.shape)) + ")"
        raise VizlabError(f"{class_name} maps a {shape_text} batch to {got}; "
                          "vizlab needs (2, 10) logits")
    if not out.is_floating_point():
        raise VizlabError(f"{class_name} returned {out.dtype} values; logits must be floats")
