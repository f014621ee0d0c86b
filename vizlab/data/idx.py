"""Structural checks of IDX files (the MNIST file format), before torchvision reads them.

torchvision trusts its files: a truncated image file, a wrong magic number or a label of 37 ends
in an assertion, a reshape error or silently wrong training. These checks read only the header
(and the labels, which are small) and turn every such problem into one VizlabError line naming
the file. Pure Python, no torch: `vizlab data` uses them too.
"""

from __future__ import annotations

import hashlib
import math
import struct
from pathlib import Path

from vizlab.errors import VizlabError

IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, columns)
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)
IMAGE_SIZE = (28, 28)
NUM_CLASSES = 10


def _fail(path: Path, problem: str) -> VizlabError:
    return VizlabError(f"{path}: {problem}")


def _read_header(path: Path, expected_magic: int) -> tuple[tuple[int, ...], int]:
    """(dims, file size) of an IDX file whose magic must be `expected_magic`."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4 + 4 * (expected_magic & 0xFF))
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from None
    kind = "images" if expected_magic == IMAGE_MAGIC else "labels"
    if len(head) < 4:
        raise _fail(path, f"truncated: {size} bytes, too short for an IDX header")
    (magic,) = struct.unpack(">I", head[:4])
    if magic != expected_magic:
        hint = " (still gzip-compressed?)" if head[:2] == b"\x1f\x8b" else ""
        raise _fail(path, f"bad magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
                          f"for IDX {kind}{hint}")
    ndim = expected_magic & 0xFF
    if len(head) < 4 + 4 * ndim:
        raise _fail(path, f"truncated: {size} bytes, too short for the {ndim}-dimension header")
    return struct.unpack(f">{ndim}I", head[4:4 + 4 * ndim]), size


def _check_size(path: Path, dims: tuple[int, ...], size: int) -> None:
    expected = 4 + 4 * len(dims) + math.prod(dims)
    if size < expected:
        raise _fail(path, f"truncated: the header promises {expected} bytes "
                          f"({' x '.join(map(str, dims))}), the file has {size}")
    if size > expected:
        raise _fail(path, f"{size - expected} unexpected bytes after the data "
                          f"(the header promises {expected} bytes, the file has {size})")


def check_images(path: Path) -> int:
    """Check an IDX image file (magic, 28x28, size vs header); return its image count."""
    path = Path(path)
    dims, size = _read_header(path, IMAGE_MAGIC)
    if dims[0] == 0:
        raise _fail(path, "holds no images")
    if tuple(dims[1:]) != IMAGE_SIZE:
        raise _fail(path, f"images are {dims[1]}x{dims[2]}, expected 28x28")
    _check_size(path, dims, size)
    return dims[0]


def check_labels(path: Path) -> int:
    """Check an IDX label file (magic, size vs header, every label in 0..9); return its count."""
    path = Path(path)
    dims, size = _read_header(path, LABEL_MAGIC)
    if dims[0] == 0:
        raise _fail(path, "holds no labels")
    _check_size(path, dims, size)
    try:
        labels = path.read_bytes()[8:]
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from None
    top = max(labels)
    if top >= NUM_CLASSES:
        raise _fail(path, f"label {top} at index {labels.index(top)} is outside 0..9")
    return dims[0]


def check_pair(images: Path, labels: Path) -> int:
    """Check an image file and its label file, and that their counts match; return the count."""
    n_images, n_labels = check_images(images), check_labels(labels)
    if n_images != n_labels:
        raise VizlabError(f"{images} holds {n_images} images but {labels} holds {n_labels} labels")
    return n_images


def md5(path: Path) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
