"""The MNIST that ships inside vizlab: first use unpacks it (no network), verify catches a
flipped byte, and the wheel built from the repo carries the files."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vizlab.cli import cli
from vizlab.data.bundled_mnist import MNIST_FILES
from vizlab.data.loading import load_splits
from vizlab.errors import VizlabError

REPO = Path(__file__).resolve().parents[1]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    """A data dir that started empty, after one load_splits (the first use)."""
    root = tmp_path_factory.mktemp("fresh") / "data"
    splits = load_splits("mnist", str(root))
    return root, splits


@pytest.fixture
def copy(unpacked, tmp_path):
    """A private copy of the unpacked data dir, for tests that damage files."""
    shutil.copytree(unpacked[0], tmp_path / "data")
    return tmp_path / "data"


def test_first_use_unpacks_the_official_files(unpacked):
    root, s = unpacked
    raw = root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_FILES)  # no .part, no .gz
    for name, (size, official) in MNIST_FILES.items():
        assert (raw / name).stat().st_size == size and md5(raw / name) == official
        assert (raw / name).stat().st_mode & 0o777 == 0o644
    assert s.train_x.shape == (60000, 1, 28, 28) and s.test_x.shape == (10000, 1, 28, 28)
    # The real data: MNIST's first training digit is a 5, its first test digit a 7.
    assert int(s.train_y[0]) == 5 and int(s.test_y[0]) == 7
    assert s.train_y.bincount().tolist()[1] == 6742


def test_valid_copy_is_reused_not_rewritten(unpacked):
    root, _ = unpacked
    raw = root / "MNIST" / "raw"
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in raw.iterdir()}
    load_splits("mnist", str(root), limit_train=10, limit_test=10)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in raw.iterdir()} == before


def test_only_a_missing_file_is_unpacked_again(copy):
    raw = copy / "MNIST" / "raw"
    before = {p.name: p.stat().st_ino for p in raw.iterdir()}
    (raw / "t10k-labels-idx1-ubyte").unlink()
    s = load_splits("mnist", str(copy), limit_train=100)
    assert len(s.test_y) == 10000
    after = {p.name: p.stat().st_ino for p in raw.iterdir()}
    assert md5(raw / "t10k-labels-idx1-ubyte") == MNIST_FILES["t10k-labels-idx1-ubyte"][1]
    assert {k: v for k, v in after.items() if k != "t10k-labels-idx1-ubyte"} == \
           {k: v for k, v in before.items() if k != "t10k-labels-idx1-ubyte"}


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x01]))


def test_verify_catches_a_flipped_byte(copy):
    path = copy / "MNIST" / "raw" / "train-images-idx3-ubyte"
    ok = CliRunner().invoke(cli, ["data", "verify", "--dataset", "mnist", "--data-dir", str(copy)])
    assert ok.exit_code == 0, ok.output
    assert "ok      train-images-idx3-ubyte: official MD5" in ok.output
    assert "ok      shipped train-images-idx3-ubyte.gz: official MD5" in ok.output

    flip_byte(path, 16 + 28 * 28 * 1234 + 300)  # one pixel bit: the structure is still valid
    bad = CliRunner().invoke(cli, ["data", "verify", "--dataset", "mnist", "--data-dir", str(copy)])
    assert isinstance(bad.exception, VizlabError)
    assert f"WRONG   {path}: MD5" in bad.output
    assert "ok      t10k-images-idx3-ubyte: official MD5" in bad.output  # only that file
    assert str(bad.exception).startswith(f"verification failed: {path}: MD5 ")

    listing = CliRunner().invoke(cli, ["data", "--data-dir", str(copy)])
    assert f"status    CORRUPT: {path}: MD5" in listing.output
    # Training refuses it too, and nothing was silently replaced.
    with pytest.raises(VizlabError, match="does not match the official MNIST file"):
        load_splits("mnist", str(copy))
    assert md5(path) != MNIST_FILES[path.name][1]


def test_verify_exit_status_and_one_line_on_stderr(copy):
    path = copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    flip_byte(path, 8 + 4321)
    env = dict(os.environ, VIZLAB_DATA_DIR=str(copy))
    proc = subprocess.run([sys.executable, "-m", "vizlab", "data", "verify"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"vizlab: error: verification failed: {path}: MD5 ")


def test_truncated_official_file_is_reported_before_loading(copy):
    path = copy / "MNIST" / "raw" / "train-images-idx3-ubyte"
    with open(path, "r+b") as f:
        f.truncate(47040016 - 784)
    with pytest.raises(VizlabError, match=r"truncated: the header promises 47040016 bytes "
                                          r"\(60000 x 28 x 28\), the file has 47039232"):
        load_splits("mnist", str(copy))


def test_wheel_contains_the_mnist_files(wheel_members):
    for name in MNIST_FILES:
        member = f"vizlab/data/mnist/{name}.gz"
        assert wheel_members[member] == (REPO / member).read_bytes()
