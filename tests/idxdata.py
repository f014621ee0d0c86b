"""Small, valid, learnable IDX datasets for tests, in torchvision's on-disk layout.

    from idxdata import write_idx_dataset
    root = write_idx_dataset(tmp_path)               # tmp_path/MNIST/raw/{train,t10k}-*-ubyte
    root = write_idx_dataset(tmp_path, "fashion-mnist")   # tmp_path/FashionMNIST/raw/...

Each class is a distinct thick bar (classes 0-4 horizontal, 5-9 vertical) jittered by a pixel,
scaled and overlaid with noise: a tiny MLP learns it within one short epoch, so tests can check
that training visibly improves accuracy. The files are uncompressed IDX exactly as torchvision
reads them, so the whole real loading path (vizlab's checks, torchvision's classes) runs on them.
Keep n_train != 60000 and n_test != 10000: files of the official sizes must match the official
MD5s, so those counts are rejected as corrupt MNIST (on purpose: see test_data.py).
"""

from __future__ import annotations

import struct
from pathlib import Path

import torch

FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def raw_dir(root: Path, dataset: str = "mnist") -> Path:
    """Where torchvision looks for `dataset`'s IDX files under `root`."""
    return Path(root) / FOLDERS[dataset] / "raw"


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file's bytes: big-endian magic, one big-endian int32 per dimension, the data."""
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


def write_images(path: Path, images: torch.Tensor) -> None:
    """Write a uint8 (N, H, W) tensor as an IDX3 image file."""
    images = images.to(torch.uint8).contiguous()
    Path(path).write_bytes(idx_bytes(IMAGE_MAGIC, tuple(images.shape), images.numpy().tobytes()))


def write_labels(path: Path, labels: torch.Tensor) -> None:
    """Write an integer (N,) tensor as an IDX1 label file."""
    labels = labels.to(torch.uint8).contiguous()
    Path(path).write_bytes(idx_bytes(LABEL_MAGIC, tuple(labels.shape), labels.numpy().tobytes()))


def make_split(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n learnable 28x28 uint8 images and their labels 0..9 (every class present when n >= 10)."""
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=generator)]
    images = torch.randint(0, 60, (n, 28, 28), generator=generator, dtype=torch.int16)
    shifts = torch.randint(-1, 2, (n,), generator=generator)
    levels = torch.randint(170, 256, (n,), generator=generator, dtype=torch.int16)
    for i in range(n):
        c, s = int(labels[i]), int(shifts[i])
        start = 3 + 5 * (c % 5) + s  # bar rows (or columns) start..start+2, inside 2..25
        if c < 5:
            images[i, start:start + 3, 4:24] = levels[i]
        else:
            images[i, 4:24, start:start + 3] = levels[i]
    return images.to(torch.uint8), labels


def write_idx_dataset(root: Path, dataset: str = "mnist", n_train: int = 256, n_test: int = 128,
                      seed: int = 0) -> Path:
    """Write a small valid dataset under root in torchvision's layout; return root (the data dir)."""
    root = Path(root)
    folder = raw_dir(root, dataset)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = make_split(n, generator)
        write_images(folder / f"{prefix}-images-idx3-ubyte", images)
        write_labels(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return root
