"""Env names the server accepts, and saving envs so that one bad env never costs another.

An env name becomes a file name (``<env dir>/<name>.json``), a URL path (``/env/<name>``), a
JavaScript string in Visdom's page (``'{{escape(name)}}'``: tornado's escape leaves a backslash,
which then swallows the closing quote and blanks the page) and HTML in Visdom's compare legend
(not escaped at all). So a name is a string of letters, digits and ``_ - . , = @ ~ : ( ) [ ]``
or inner spaces, at most ``MAX_LENGTH`` characters, not ``.`` or ``..``: one safe path
component, the same in a URL, in JavaScript and in HTML. (vizlab's own names, vizlab.names,
are a subset.) No ``/`` or ``\\``, no
``+`` (Visdom's compare URLs join names with it), no ``%``, ``?`` or ``#`` (the page builds its
URLs without encoding), no quotes or ``<>&``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

MAX_LENGTH = 128
_PUNCTUATION = frozenset("_-.,=@~:()[] ")


def problem(name: object) -> str | None:
    """Why ``name`` cannot be an env name, in a few words; None when it can."""
    if not isinstance(name, str):
        return f"env name must be a string, not {_json_type(name)}"
    if not name:
        return "env name is empty"
    if len(name) > MAX_LENGTH:
        return f"env name is longer than {MAX_LENGTH} characters"
    bad = sorted({c for c in name if not (c.isalnum() or c in _PUNCTUATION)})
    if bad:
        return f"env name {name!r} holds {''.join(bad)!r}; use letters, digits, spaces and _-.,=@~:()[]"
    if name in (".", ".."):
        return f"env name {name!r} names a directory"
    if name != name.strip():
        return f"env name {name!r} starts or ends with a space"
    return None


def env_file(env_dir: str | os.PathLike, name: object) -> Path | None:
    """``<env_dir>/<name>.json`` when that file lies directly in env_dir (no separator in the
    name, no symbolic link leading out), else None."""
    if (not isinstance(name, str) or not name or name in (".", "..")
            or any(c in name for c in "/\\\0")):
        return None
    base = Path(env_dir).resolve()
    path = (base / f"{name}.json").resolve()
    return path if path.parent == base else None


def save_envs(state: dict, env_dir: str | os.PathLike, log: logging.Logger) -> list[str]:
    """Write each env of Visdom's state to its file in env_dir, on its own: an env that cannot be
    written is logged and skipped, and the others are still saved. Envs still lazily on disk
    (loaded by Visdom only when first used) are skipped: their file is already there.

    Each file is written whole or not at all (a temporary file, then a rename). Returns the names
    saved."""
    saved = []
    for name in list(state):
        env = state[name]
        if getattr(env, "_raw_dict", True) is None:  # visdom's LazyEnvData, never loaded
            continue
        path = env_file(env_dir, name)
        if path is None:
            log.warning("env %r not saved: its file would lie outside %s", name, env_dir)
            continue
        try:
            raw = env._raw_dict if hasattr(env, "_raw_dict") else env
            _write_atomically(path, json.dumps(raw))
        except (OSError, TypeError, ValueError) as exc:
            log.warning("env %r not saved: %s", name, exc)
            continue
        saved.append(name)
    return saved


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".saving-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_type(value: object) -> str:
    return {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
