"""Datasets as tensors resident on the training device.

`load_splits` makes sure the files are there (MNIST: unpacked from vizlab's shipped copy;
Fashion-MNIST: downloaded by torchvision), checks every IDX file (vizlab.data.known_datasets), reads them
through torchvision's own dataset classes, and hands back whole splits: normalized once, moved to
the device once. Batches are then index slices of these tensors: no DataLoader, PIL or
per-sample transform anywhere near the training loop.

Torch is imported inside the functions: the CLI imports this module at start-up.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vizlab import term
from vizlab.data import bundled_mnist, known_datasets
from vizlab.errors import VizlabError

if TYPE_CHECKING:
    import torch

# The customary MNIST constants (mean and std of the training pixels, scaled to 0..1).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
# Fashion-MNIST's are computed from its training images at load time (exactly, from a
# histogram); for the official files that gives the published 0.2860 / 0.3530.


@dataclass(frozen=True)
class Splits:
    """One dataset's splits, ready for index-slice batching."""
    name: str                        # "mnist" | "fashion-mnist"
    classes: tuple[str, ...]         # "0".."9" for MNIST; Fashion-MNIST's class names
    train_x: torch.Tensor          # (N, 1, 28, 28) on the device: float32, normalized; on
                                   # CUDA uint8 ResidentImages, normalized as batches are read
    train_y: torch.Tensor          # int64 (N,), on the device
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_raw: torch.Tensor         # uint8 (N, 28, 28) on the CPU: test images for image grids
    val_x: torch.Tensor | None  # held out from the end of a seeded permutation of train
    val_y: torch.Tensor | None
    mean: float
    std: float


def _check_data_dir(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise VizlabError(f"--data-dir {data_dir} is not a directory")
    if data_dir.is_dir() and not os.access(data_dir, os.R_OK | os.X_OK):
        raise VizlabError(f"cannot read --data-dir {data_dir}: permission denied")


def _download(spec: known_datasets.DatasetSpec, data_dir: Path) -> None:
    """Let torchvision download a dataset; offline, one line naming what is expected where."""
    from torchvision import datasets

    folder = known_datasets.raw_dir(spec, data_dir)
    term.warn(f"{spec.title} is not in {folder}; downloading it (about 30 MB)")
    # torchvision prints its progress; the terminal belongs to the console sink.
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            getattr(datasets, spec.folder)(str(data_dir), train=True, download=True)
    except PermissionError as exc:
        raise VizlabError(f"cannot write {spec.title} into {folder}: {exc.strerror}; "
                          "pass a writable --data-dir") from None
    except Exception as exc:  # torchvision wraps network failures in RuntimeError / URLError
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise VizlabError(f"{spec.title} is not in {folder} and downloading it failed "
                          f"({reason}); put {', '.join(known_datasets.FILES)} there, or point "
                          f"--data-dir at a directory that holds {spec.folder}/raw/") from None


def prepare(dataset: str, data_dir: str | Path) -> known_datasets.DatasetSpec:
    """Make sure the dataset's four IDX files are in place and sound; raise one line if not."""
    spec = known_datasets.get_spec(dataset)
    data_dir = Path(data_dir).expanduser()
    _check_data_dir(data_dir)
    folder = known_datasets.raw_dir(spec, data_dir)
    if spec.name == "mnist":
        bundled_mnist.unpack_missing(folder)  # torchvision's download is never called for MNIST
    elif not all((folder / name).exists() for name in known_datasets.FILES):
        _download(spec, data_dir)
    known_datasets.require_valid(spec, data_dir)
    return spec


def _pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Exact mean and std of uint8 pixels scaled to 0..1, from a 256-bin histogram
    (no float copy of the whole set)."""
    import torch

    counts = torch.bincount(images.reshape(-1), minlength=256).double()
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    n = counts.sum()
    mean = (counts * levels).sum() / n
    var = (counts * (levels - mean) ** 2).sum() / n
    return float(mean), float(var.sqrt())


def _to_device(images: torch.Tensor, mean: float, std: float, device, uint8: bool):
    """The images on ``device``: normalized float32, or (``uint8``) ResidentImages that
    normalize each batch as it is read (vizlab.data.resident)."""
    from vizlab.data.resident import ResidentImages, normalize

    # Move the uint8 pixels (4x smaller than float32); convert on the device.
    pixels = images.to(device).unsqueeze(1)
    return ResidentImages(pixels, mean, std) if uint8 else normalize(pixels, mean, std)


def load_splits(dataset: str, data_dir: str, device="cpu", limit_train: int | None = None,
                limit_test: int | None = None, val_split: int = 0, seed: int = 0,
                uint8: bool | None = None) -> Splits:
    """Load `dataset` ("mnist" | "fashion-mnist") from `data_dir` onto `device`.

    The images stay uint8 on the device, normalized batch by batch (`uint8`; by default on CUDA),
    or are normalized once into float32 (by default elsewhere): the same numbers either way.

    val_split=N holds out N training samples, chosen by a permutation seeded with `seed`
    (the held-out ones are the end of it); the rest keep their file order. limit_train and
    limit_test keep the first N samples (after the validation split). Any problem with the
    files or the arguments raises one VizlabError line.
    """
    import torch
    from torchvision import datasets

    uint8 = torch.device(device).type == "cuda" if uint8 is None else uint8
    spec = prepare(dataset, data_dir)
    root = str(Path(data_dir).expanduser())
    legacy = known_datasets.raw_dir(spec, root).parent / "processed"
    if (legacy / "training.pt").exists() and (legacy / "test.pt").exists():
        # Old torchvision caches win over the raw files in torchvision's loader.
        term.warn(f"torchvision reads the legacy cache in {legacy}, not the checked IDX files; "
                  "delete that folder to train on them")
    cls = getattr(datasets, spec.folder)
    try:
        train, test = cls(root, train=True, download=False), cls(root, train=False, download=False)
    except (OSError, RuntimeError, ValueError, AssertionError) as exc:
        raise VizlabError(f"torchvision could not read {spec.title} from "
                          f"{known_datasets.raw_dir(spec, root)}: {exc}") from None

    train_images, train_labels = train.data, train.targets
    if spec.name == "mnist":
        mean, std = MNIST_MEAN, MNIST_STD
    else:
        mean, std = _pixel_stats(train_images)

    n_train = len(train_labels)
    if val_split >= n_train:
        raise VizlabError(f"--val-split {val_split} leaves no training samples: "
                          f"{spec.title}'s training set has {n_train}")
    val_x = val_y = None
    if val_split > 0:
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
        keep, held = order[:-val_split].sort().values, order[-val_split:].sort().values
        val_x = _to_device(train_images[held], mean, std, device, uint8)
        val_y = train_labels[held].to(device)
        train_images, train_labels = train_images[keep], train_labels[keep]

    train_images, train_labels = train_images[:limit_train], train_labels[:limit_train]
    test_images, test_labels = test.data[:limit_test], test.targets[:limit_test]
    return Splits(
        name=spec.name, classes=spec.classes,
        train_x=_to_device(train_images, mean, std, device, uint8),
        train_y=train_labels.to(device),
        test_x=_to_device(test_images, mean, std, device, uint8), test_y=test_labels.to(device),
        test_raw=test_images.clone() if limit_test else test_images,
        val_x=val_x, val_y=val_y, mean=mean, std=std)
