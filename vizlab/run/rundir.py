"""RunDir: the one owner of a run directory: its layout, its lock, and typed reading and writing.

Rules it keeps (the README's development section has the table):
- a run dir is one safe name under ``--runs-dir`` (vizlab.names); nothing is written or deleted
  outside it, and symlinks inside it are never followed for writing;
- one process owns a run dir at a time: an exclusive ``flock`` on its lock file, held for the
  life of the run (a second run, a resume or ``vizlab runs rm`` gets one line naming the pid);
- every file is written whole (a temporary file, then an atomic rename), so a crash or a full
  disk leaves the previous version intact;
- everything read back is untrusted: config.json is type-checked, checkpoints are loaded with
  ``weights_only=True`` and checked, and only regular files are read (config.json bounded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vizlab.config import RunConfig
from vizlab.errors import VizlabError
from vizlab.names import check_name
from vizlab.run_files import CHECKPOINT_FILE, CONFIG_FILE, EVENTS_FILE, LOCK_FILE

MAX_JSON_BYTES = 4 << 20  # config.json and comparison.json are a few kB
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class RunDir:
    """A run directory. ``create`` and ``open`` check it; the other methods read and write it."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock_fd: int | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILE

    def __str__(self) -> str:
        return str(self.path)

    # -- finding and making ----------------------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: str | Path, name: str | None, default: str) -> RunDir:
        """A new run dir under ``runs_dir``: ``name``, or ``default`` (-2, -3, ... when taken).
        Never reuses a dir: that would mix two runs' logs."""
        root = Path(runs_dir)
        if name is not None:
            check_name("--name", name)
        if root.exists() and not root.is_dir():
            raise VizlabError(f"--runs-dir {root} is not a directory")
        try:
            root.mkdir(parents=True, exist_ok=True)
            candidates = [name] if name else [default] + [f"{default}-{i}" for i in range(2, 1000)]
            for candidate in candidates:
                try:
                    (root / candidate).mkdir()
                    return cls(root / candidate)
                except FileExistsError:
                    if name:
                        raise VizlabError(f"run dir {root / name} exists; pick another --name or "
                                          f"continue it with --resume {root / name}") from None
        except OSError as exc:
            raise VizlabError(f"cannot write runs dir {root}: {exc.strerror or exc}") from None
        raise VizlabError(f"cannot find a free run name under {root}")

    @classmethod
    def open(cls, path: Path | str, flag: str = "--resume") -> RunDir:
        """An existing run dir (one with a config.json), or one line saying why it is not."""
        p = Path(path)
        if not p.exists():
            raise VizlabError(f"{flag} {p}: no such run dir")
        if not p.is_dir():
            raise VizlabError(f"{flag} {p}: not a directory")
        if not (p / CONFIG_FILE).is_file():
            raise VizlabError(f"{flag} {p}: no {CONFIG_FILE} there (not a vizlab run dir)")
        return cls(p)

    # -- the lock --------------------------------------------------------------------------------
    def lock(self) -> RunDir:
        """Own the dir until ``unlock()`` (or this process ends): raise when another process does."""
        import fcntl

        try:
            fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | _NOFOLLOW | os.O_CLOEXEC,
                         0o644)
        except OSError as exc:
            raise VizlabError(f"cannot lock run dir {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise VizlabError(f"run dir {self.path} is in use by process {holder} "
                              "(a run training there); wait for it to end or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return self

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def __enter__(self) -> RunDir:
        return self.lock()

    def __exit__(self, *exc) -> None:
        self.unlock()

    # -- config.json -----------------------------------------------------------------------------
    def read_config(self) -> RunConfig:
        """The run's config, every field type-checked; one line when the file is bad."""
        from vizlab.report.runlog import read_json_object

        path = self.path / CONFIG_FILE
        try:
            return RunConfig.from_dict(read_json_object(path, MAX_JSON_BYTES))
        except FileNotFoundError:
            raise VizlabError(f"{path}: missing (not a vizlab run dir)") from None
        except ValueError as exc:
            raise VizlabError(f"{path}: {exc}") from None

    def write_config(self, cfg: RunConfig) -> None:
        self.write_json(CONFIG_FILE, cfg.to_dict())

    def write_json(self, name: str, data: Any) -> None:
        self.write_bytes(name, (json.dumps(data, indent=2) + "\n").encode())

    def write_bytes(self, name: str, data: bytes) -> None:
        with self._atomic(name) as f:
            f.write(data)

    # -- checkpoint.pt ---------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        import torch

        with self._atomic(CHECKPOINT_FILE) as f:
            torch.save(state, f)

    def load_checkpoint(self) -> dict[str, Any]:
        """The saved training state. Loaded with ``weights_only=True``: a file that needs more
        (pickled code) is refused, never run."""
        import pickle

        import torch

        from vizlab.report.runlog import open_regular

        path = self.path / CHECKPOINT_FILE
        try:
            with open_regular(path) as f:
                state = torch.load(f, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise VizlabError(f"no checkpoint in {self.path} (nothing to resume)") from None
        except pickle.UnpicklingError:
            raise VizlabError(f"refusing checkpoint {path}: it holds more than tensors and plain "
                              "data (loading it could run code)") from None
        except (OSError, ValueError, RuntimeError, EOFError) as exc:
            raise VizlabError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from None
        if not isinstance(state, dict):
            raise VizlabError(f"cannot read checkpoint {path}: not a vizlab checkpoint")
        return state

    # -- writing whole files ---------------------------------------------------------------------
    def _atomic(self, name: str):
        return _AtomicFile(self.path, name)


class _AtomicFile:
    """Write ``dir/name`` whole: a new temporary file (never through a symlink), synced, then
    renamed over the old one. On any error the temporary file goes and the old file stays."""

    def __init__(self, directory: Path, name: str):
        self.final = directory / name
        self.tmp = directory / f".{name}.tmp"

    def __enter__(self):
        try:
            self.tmp.unlink(missing_ok=True)  # a stale one (or a planted symlink: unlink, not follow)
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC,
                         0o644)
        except OSError as exc:
            raise VizlabError(f"cannot write {self.final}: {exc.strerror or exc}") from None
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, kind, exc, tb):
        error = exc if kind is not None and issubclass(kind, OSError) else None
        try:
            if kind is None:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            if kind is None:
                os.replace(self.tmp, self.final)  # replaces a symlink itself, never its target
        except OSError as exc2:
            error = exc2
        if kind is not None or error is not None:
            self.tmp.unlink(missing_ok=True)
        if error is not None:
            raise VizlabError(f"cannot write {self.final}: {error.strerror or error}") from None
        return False
