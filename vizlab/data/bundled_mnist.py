"""The copy of MNIST that ships inside vizlab, so `vizlab run mlp` works with no internet.

The four official files live gzip-compressed in vizlab/data/mnist/ (package data, about 11 MB).
On first use they are unpacked into `<data_dir>/MNIST/raw/`, torchvision's layout, so loading
still goes through torchvision's MNIST class and its download is never called. Each file is
written to a temporary name, checked against the official MD5 and only then renamed into place:
an interrupted unpack or a concurrent run never leaves a half-written file under the real name.

MNIST is by Yann LeCun and Corinna Cortes (CC BY-SA 3.0).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path

from vizlab.errors import VizlabError

# The official MNIST files: uncompressed size and MD5 (the values torchvision's data also has).
MNIST_FILES = {
    "train-images-idx3-ubyte": (47040016, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (60008, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (7840016, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (10008, "27ae3e4e09519cfbb04c329615203637"),
}


def shipped_file(name: str):
    """The packaged `<name>.gz` (an importlib.resources Traversable)."""
    return resources.files("vizlab.data").joinpath("mnist", f"{name}.gz")


def _chunks(name: str):
    """The decompressed bytes of the packaged file, 1 MiB at a time; a missing or damaged
    package file becomes one VizlabError line."""
    try:
        with shipped_file(name).open("rb") as packed, gzip.GzipFile(fileobj=packed) as f:
            yield from iter(lambda: f.read(1 << 20), b"")
    except FileNotFoundError:
        raise VizlabError(f"vizlab's shipped copy of MNIST ({name}.gz) is missing: reinstall "
                          "vizlab, or put the MNIST files in MNIST/raw/ under --data-dir") from None
    except (OSError, EOFError) as exc:
        raise VizlabError(f"vizlab's shipped {name}.gz is damaged ({exc}); reinstall vizlab") \
            from None


def shipped_md5(name: str) -> str:
    """MD5 of the packaged file once decompressed (what `vizlab data verify` compares)."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in _chunks(name):
        digest.update(chunk)
    return digest.hexdigest()


def unpack(name: str, raw_dir: Path) -> Path:
    """Unpack one shipped file into raw_dir atomically, verified against the official MD5."""
    official = MNIST_FILES[name][1]
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=raw_dir)
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out:
            for chunk in _chunks(name):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != official:
            raise VizlabError(f"vizlab's shipped {name}.gz does not unpack to the official MNIST "
                              f"file (MD5 {digest.hexdigest()}, expected {official}); "
                              "reinstall vizlab")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the real file should read like any other
        os.replace(tmp, raw_dir / name)
        tmp = None
    except OSError as exc:
        raise VizlabError(f"cannot unpack MNIST into {raw_dir}: {exc.strerror or exc}; "
                          "pass a writable --data-dir") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return raw_dir / name


def unpack_missing(raw_dir: Path) -> list[str]:
    """Unpack every MNIST file absent from raw_dir; files already there are left alone (they
    are checked before loading, not overwritten). Returns the names unpacked."""
    missing = [name for name in MNIST_FILES if not (raw_dir / name).exists()]
    if not missing:
        return []
    try:
        raw_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VizlabError(f"MNIST is not in {raw_dir} and vizlab cannot unpack its copy there "
                          f"({exc.strerror or exc}); pass a writable --data-dir") from None
    for name in missing:
        unpack(name, raw_dir)
    return missing
