"""The datasets vizlab knows, where their files live, and whether those files can be trusted.

Torch-free: `vizlab data` lists and verifies without paying for the torch import. Every file
gets the structural IDX checks (vizlab.data.idx); a file of the official size is also compared with
the official MD5, so a flipped byte in real MNIST is caught, while a user's own (or a test's
small) IDX files are accepted on structure alone.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from vizlab.data import idx
from vizlab.data.bundled_mnist import MNIST_FILES
from vizlab.errors import VizlabError

FILES = tuple(MNIST_FILES)  # train images, train labels, test images, test labels
SPLIT_FILES = {"train": FILES[:2], "test": FILES[2:]}
OFFICIAL_SIZES = {name: size for name, (size, _) in MNIST_FILES.items()}  # Fashion-MNIST's too


@dataclass(frozen=True)
class DatasetSpec:
    name: str                        # the --dataset value
    title: str
    folder: str                      # torchvision's class name, also its folder under data_dir
    classes: tuple[str, ...]
    origin: str                      # how the files get there, for `vizlab data`
    raw_md5: dict[str, str] = field(default_factory=dict)  # official MD5s of the IDX files
    gz_md5: dict[str, str] = field(default_factory=dict)   # ... of the .gz downloads
    repair: str = ""                 # what to do about a bad file


DATASETS = {
    "mnist": DatasetSpec(
        "mnist", "MNIST", "MNIST", tuple(str(d) for d in range(10)),
        "shipped with vizlab; unpacked on first use",
        raw_md5={name: digest for name, (_, digest) in MNIST_FILES.items()},
        repair="delete it and vizlab unpacks its own copy again"),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", "Fashion-MNIST", "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"),
        "downloaded by torchvision on first use (needs internet)",
        # Zalando publishes MD5s of the .gz files only (torchvision's FashionMNIST.resources);
        # torchvision keeps each .gz next to the file it unpacked, so the unpacked file is
        # checked by comparing it with its verified .gz.
        gz_md5={
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        repair="delete it and its .gz, and vizlab downloads it again"),
}


def get_spec(dataset: str) -> DatasetSpec:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise VizlabError(f"unknown --dataset {dataset!r}; choose from "
                          f"{', '.join(DATASETS)}") from None


def raw_dir(spec: DatasetSpec, data_dir: str | Path) -> Path:
    """Where torchvision reads `spec`'s IDX files: <data_dir>/<Folder>/raw."""
    return Path(data_dir).expanduser() / spec.folder / "raw"


@dataclass(frozen=True)
class FileCheck:
    path: Path
    state: str   # "missing" | "official" (MD5 matches) | "valid" (structure only) | "bad"
    note: str    # for "bad": the whole one-line error, naming the file

    @property
    def ok(self) -> bool:
        return self.state in ("official", "valid")


def _md5_of_gz(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _official_check(spec: DatasetSpec, path: Path) -> FileCheck:
    """Compare a file of the official size with the official MD5 (directly, or via its .gz)."""
    name = path.name
    bad = f"does not match the official {spec.title} file (corrupt); {spec.repair}"
    if name in spec.raw_md5:
        digest = idx.md5(path)
        if digest != spec.raw_md5[name]:
            return FileCheck(path, "bad", f"{path}: MD5 {digest} {bad}")
        return FileCheck(path, "official", "official MD5")
    gz = path.with_name(name + ".gz")
    if name not in spec.gz_md5 or not gz.is_file():
        return FileCheck(path, "valid", "official size; no official checksum to compare with")
    if idx.md5(gz) != spec.gz_md5[name]:
        return FileCheck(path, "bad", f"{gz}: MD5 {bad}")
    try:
        unpacked = _md5_of_gz(gz)
    except (OSError, EOFError) as exc:
        return FileCheck(path, "bad", f"{gz}: cannot decompress ({exc})")
    if idx.md5(path) != unpacked:
        return FileCheck(path, "bad", f"{path}: differs from its verified {gz.name}: {bad}")
    return FileCheck(path, "official", f"matches {gz.name}, official MD5")


def check_file(spec: DatasetSpec, path: Path) -> FileCheck:
    """Structure first (its messages are the most specific), then the official MD5 if the
    file has the official size."""
    if not path.exists():
        return FileCheck(path, "missing", "not present")
    check = idx.check_images if "images" in path.name else idx.check_labels
    try:
        check(path)
        if path.stat().st_size == OFFICIAL_SIZES.get(path.name):
            return _official_check(spec, path)
    except VizlabError as exc:
        return FileCheck(path, "bad", str(exc))
    except OSError as exc:
        return FileCheck(path, "bad", f"{path}: cannot read: {exc.strerror or exc}")
    return FileCheck(path, "valid", "valid IDX (not the official file: structure checked)")


def check_dataset(spec: DatasetSpec, data_dir: str | Path) -> list[FileCheck]:
    """One FileCheck per file, in FILES order; image/label count mismatches count as bad."""
    folder = raw_dir(spec, data_dir)
    checks = {name: check_file(spec, folder / name) for name in FILES}
    for images, labels in SPLIT_FILES.values():
        if checks[images].ok and checks[labels].ok:
            try:
                idx.check_pair(folder / images, folder / labels)
            except VizlabError as exc:
                checks[labels] = FileCheck(folder / labels, "bad", str(exc))
    return list(checks.values())


def require_valid(spec: DatasetSpec, data_dir: str | Path) -> None:
    """Raise one VizlabError line for the first missing or bad file; return if all are sound."""
    for check in check_dataset(spec, data_dir):
        if check.state == "bad":
            raise VizlabError(check.note)
        if check.state == "missing":
            raise VizlabError(f"{spec.title} file {check.path} is missing; expected "
                              f"{', '.join(FILES)} in {check.path.parent} (see --data-dir)")


def summary(checks: list[FileCheck]) -> str:
    """One phrase for `vizlab data`: present/verified, incomplete, corrupt or absent."""
    bad = [c for c in checks if c.state == "bad"]
    missing = [c.path.name for c in checks if c.state == "missing"]
    if bad:
        return f"CORRUPT: {bad[0].note}"
    if len(missing) == len(checks):
        return "not present"
    if missing:
        return f"incomplete: missing {', '.join(missing)}"
    if all(c.state == "official" for c in checks):
        return "present, verified (official MD5s)"
    return "present, valid IDX files (structure checked; not all have an official MD5)"
