"""vizlab.data (loading, idx, known_datasets) on small IDX files the tests write, read through
torchvision's real MNIST and FashionMNIST classes; `vizlab data` through Click's CliRunner."""

from __future__ import annotations

import gzip
import struct

import pytest
import torch
from click.testing import CliRunner
from idxdata import LABEL_MAGIC, idx_bytes, raw_dir, write_idx_dataset, write_images, write_labels
from torchvision import datasets

from vizlab.cli import cli
from vizlab.data import known_datasets
from vizlab.data.loading import MNIST_MEAN, MNIST_STD, load_splits
from vizlab.errors import VizlabError


def read_idx(path):
    """The payload of an IDX file as a uint8 tensor (header skipped), for independent checks."""
    data = path.read_bytes()
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).view(*dims)


@pytest.fixture
def mnist_dir(tmp_path):
    return write_idx_dataset(tmp_path / "data", "mnist", n_train=256, n_test=128)


def test_mnist_splits_are_normalized_tensors(mnist_dir):
    s = load_splits("mnist", str(mnist_dir))
    raw = raw_dir(mnist_dir)
    train_images = read_idx(raw / "train-images-idx3-ubyte")
    test_images = read_idx(raw / "t10k-images-idx3-ubyte")

    assert s.name == "mnist" and s.classes == tuple("0123456789")
    assert (s.mean, s.std) == (MNIST_MEAN, MNIST_STD)
    assert s.train_x.shape == (256, 1, 28, 28) and s.train_x.dtype == torch.float32
    assert s.test_x.shape == (128, 1, 28, 28)
    assert s.train_y.dtype == torch.int64 and s.train_y.shape == (256,)
    assert s.val_x is None and s.val_y is None
    expected = (train_images.float() / 255 - MNIST_MEAN) / MNIST_STD
    torch.testing.assert_close(s.train_x[:, 0], expected)
    assert torch.equal(s.train_y, read_idx(raw / "train-labels-idx1-ubyte").long())
    assert torch.equal(s.test_y, read_idx(raw / "t10k-labels-idx1-ubyte").long())
    assert s.test_raw.dtype == torch.uint8 and torch.equal(s.test_raw, test_images)
    # All four files were already there: nothing was unpacked or downloaded beside them.
    assert sorted(p.name for p in raw.iterdir()) == sorted(known_datasets.FILES)


def test_fashion_mnist_through_torchvision_with_its_class_names(tmp_path):
    root = write_idx_dataset(tmp_path, "fashion-mnist", n_train=200, n_test=50, seed=1)
    s = load_splits("fashion-mnist", str(root))
    assert s.classes == tuple(datasets.FashionMNIST.classes)
    assert s.classes[9] == "Ankle boot"
    # Fashion-MNIST's mean and std are computed from its own training pixels.
    pixels = read_idx(raw_dir(root, "fashion-mnist") / "train-images-idx3-ubyte").double() / 255
    assert s.mean == pytest.approx(pixels.mean().item(), abs=1e-9)
    assert s.std == pytest.approx(pixels.std(unbiased=False).item(), abs=1e-9)
    assert abs(s.train_x.mean().item()) < 1e-4 and s.train_x.std().item() == pytest.approx(1, abs=1e-2)
    assert len(s.train_y) == 200 and len(s.test_y) == 50


def test_catalog_agrees_with_torchvision():
    fashion = known_datasets.DATASETS["fashion-mnist"]
    for url, digest in datasets.FashionMNIST.resources:
        assert fashion.gz_md5[url.rsplit("/", 1)[-1][:-3]] == digest
    assert [name[:-3] for name, _ in datasets.MNIST.resources] == list(known_datasets.FILES)
    assert fashion.folder == datasets.FashionMNIST.__name__


def test_val_split_is_seeded_disjoint_and_complete(mnist_dir):
    full = load_splits("mnist", str(mnist_dir))
    a = load_splits("mnist", str(mnist_dir), val_split=56, seed=7)
    b = load_splits("mnist", str(mnist_dir), val_split=56, seed=7)
    c = load_splits("mnist", str(mnist_dir), val_split=56, seed=8)
    assert a.train_x.shape[0] == 200 and a.val_x.shape == (56, 1, 28, 28) and len(a.val_y) == 56
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.val_x, c.val_x)
    # Every training sample lands in exactly one of the two parts.
    rows = lambda x: {tuple(r.tolist()) for r in x.flatten(1)}
    assert rows(a.train_x) | rows(a.val_x) == rows(full.train_x)
    assert not rows(a.train_x) & rows(a.val_x)
    assert a.test_x.shape == full.test_x.shape  # the test split is untouched


def test_val_split_must_leave_training_samples(mnist_dir):
    with pytest.raises(VizlabError, match=r"--val-split 256 leaves no training samples.*256"):
        load_splits("mnist", str(mnist_dir), val_split=256)


def test_limits_keep_the_first_samples(mnist_dir):
    full = load_splits("mnist", str(mnist_dir))
    s = load_splits("mnist", str(mnist_dir), limit_train=40, limit_test=10)
    assert torch.equal(s.train_x, full.train_x[:40]) and torch.equal(s.train_y, full.train_y[:40])
    assert torch.equal(s.test_x, full.test_x[:10]) and torch.equal(s.test_raw, full.test_raw[:10])
    # With a validation split, the limit applies to what is left for training.
    v = load_splits("mnist", str(mnist_dir), val_split=16, limit_train=40, seed=3)
    w = load_splits("mnist", str(mnist_dir), val_split=16, seed=3)
    assert torch.equal(v.train_x, w.train_x[:40]) and torch.equal(v.val_x, w.val_x)


def test_test_dataset_is_learnable(mnist_dir):
    """tests/idxdata.py promises data a tiny model learns quickly: check it does."""
    torch.manual_seed(0)
    s = load_splits("mnist", str(mnist_dir))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    accuracy = lambda: (model(s.test_x).argmax(1) == s.test_y).float().mean().item()
    before = accuracy()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for i in range(0, 256, 32):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(s.train_x[i:i + 32]), s.train_y[i:i + 32]).backward()
        opt.step()
    assert before < 0.3 and accuracy() > 0.6


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def _bad_magic(path):
    data = bytearray(path.read_bytes())
    data[2] = 0x09
    path.write_bytes(bytes(data))


def _bad_label(path):
    data = bytearray(path.read_bytes())
    data[8 + 5] = 37
    path.write_bytes(bytes(data))


def _short_labels(path):
    write_labels(path, read_idx(path)[:-1])


def _trailing(path):
    path.write_bytes(path.read_bytes() + b"\0\0\0")


def _gzipped(path):
    path.write_bytes(gzip.compress(path.read_bytes()))


def _wrong_size_images(path):
    write_images(path, torch.zeros(256, 27, 27, dtype=torch.uint8))


CORRUPTIONS = [
    ("train-images-idx3-ubyte", _truncate, r"truncated: the header promises 200720 bytes"),
    ("t10k-images-idx3-ubyte", _bad_magic, r"bad magic number 0x00000903, expected 0x00000803"),
    ("train-labels-idx1-ubyte", _bad_magic, r"bad magic number 0x00000901, expected 0x00000801"),
    ("train-labels-idx1-ubyte", _bad_label, r"label 37 at index 5 is outside 0\.\.9"),
    ("train-labels-idx1-ubyte", _short_labels, r"holds 256 images but .* holds 255 labels"),
    ("t10k-labels-idx1-ubyte", _trailing, r"3 unexpected bytes after the data"),
    ("train-images-idx3-ubyte", _gzipped, r"still gzip-compressed"),
    ("train-images-idx3-ubyte", _wrong_size_images, r"images are 27x27, expected 28x28"),
]


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("name,corrupt,message", CORRUPTIONS,
                         ids=[f"{c[1].__name__[1:]}-{c[0][:10]}" for c in CORRUPTIONS])
def test_corrupt_file_is_one_line_naming_it(tmp_path, dataset, name, corrupt, message):
    root = write_idx_dataset(tmp_path, dataset, n_train=256, n_test=64)
    path = raw_dir(root, dataset) / name
    corrupt(path)
    with pytest.raises(VizlabError, match=message) as info:
        load_splits(dataset, str(root))
    text = str(info.value)
    assert "\n" not in text and str(path) in text


def test_file_of_official_size_must_match_official_md5(tmp_path):
    """10,000 test samples give the official t10k file sizes: structure alone is not enough."""
    root = write_idx_dataset(tmp_path, "mnist", n_train=64, n_test=10000)
    path = raw_dir(root) / "t10k-images-idx3-ubyte"
    assert path.stat().st_size == known_datasets.OFFICIAL_SIZES[path.name]
    with pytest.raises(VizlabError, match=r"t10k-images-idx3-ubyte: MD5 [0-9a-f]{32} does not "
                                          r"match the official MNIST file \(corrupt\); delete it"):
        load_splits("mnist", str(root))


def test_fashion_official_size_checked_against_its_gz(tmp_path):
    root = write_idx_dataset(tmp_path, "fashion-mnist", n_train=64, n_test=10000)
    folder = raw_dir(root, "fashion-mnist")
    spec = known_datasets.DATASETS["fashion-mnist"]
    path = folder / "t10k-labels-idx1-ubyte"
    # No .gz beside it (the user brought the file): structure is all that can be checked.
    assert known_datasets.check_file(spec, path).state == "valid"
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(path.read_bytes()))
    check = known_datasets.check_file(spec, path)
    assert check.state == "bad" and "t10k-labels-idx1-ubyte.gz: MD5 does not match" in check.note
    with pytest.raises(VizlabError, match="does not match the official Fashion-MNIST file"):
        load_splits("fashion-mnist", str(root))


def test_data_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(VizlabError, match=r"^--data-dir .*not-a-dir is not a directory$"):
        load_splits("mnist", str(blocker))


def test_mnist_folder_that_cannot_be_written(tmp_path):
    (tmp_path / "MNIST").write_text("a file where vizlab needs a directory")
    with pytest.raises(VizlabError) as info:
        load_splits("mnist", str(tmp_path))
    text = str(info.value)
    assert "MNIST is not in" in text and "pass a writable --data-dir" in text and "\n" not in text


def test_fashion_mnist_offline_is_one_line_naming_files_and_flag(tmp_path, capsys):
    with pytest.raises(VizlabError) as info:
        load_splits("fashion-mnist", str(tmp_path))
    text = str(info.value)
    assert "\n" not in text and "--data-dir" in text and str(tmp_path / "FashionMNIST" / "raw") in text
    for name in known_datasets.FILES:
        assert name in text
    assert "downloading it" in capsys.readouterr().err  # said on stderr before trying


def test_unknown_dataset():
    with pytest.raises(VizlabError, match="unknown --dataset 'cifar'; choose from mnist, fashion-mnist"):
        load_splits("cifar", "/nonexistent")


def test_data_command_lists_datasets(tmp_path):
    root = write_idx_dataset(tmp_path, "fashion-mnist", n_train=64, n_test=32)
    result = CliRunner().invoke(cli, ["data", "--data-dir", str(root)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"location  {root / 'MNIST' / 'raw'}" in out
    assert f"location  {root / 'FashionMNIST' / 'raw'}" in out
    mnist, fashion = out.split("fashion-mnist  (")
    assert "not present" in mnist and "shipped with vizlab" in mnist
    assert "present, valid IDX files" in fashion


def test_data_verify_names_the_wrong_file(tmp_path):
    root = write_idx_dataset(tmp_path, "mnist", n_train=64, n_test=32)
    good = CliRunner().invoke(cli, ["data", "verify", "--dataset", "mnist", "--data-dir", str(root)])
    assert good.exit_code == 0, good.output
    assert "no problems found" in good.output

    path = raw_dir(root) / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(LABEL_MAGIC, (32,), bytes([3] * 31 + [200])))
    bad = CliRunner().invoke(cli, ["data", "verify", "--dataset", "mnist", "--data-dir", str(root)])
    assert isinstance(bad.exception, VizlabError)
    assert f"WRONG   {path}: label 200 at index 31" in bad.output
    assert str(bad.exception).startswith(f"verification failed: {path}: label 200")


def test_legacy_processed_cache_is_announced(mnist_dir, capsys):
    """torchvision prefers an old processed/*.pt cache to the raw files: say so, loudly."""
    processed = mnist_dir / "MNIST" / "processed"
    processed.mkdir()
    for name, train in (("training.pt", True), ("test.pt", False)):
        d = datasets.MNIST(str(mnist_dir), train=train)
        torch.save((d.data, d.targets), processed / name)
    load_splits("mnist", str(mnist_dir))
    assert f"torchvision reads the legacy cache in {processed}" in capsys.readouterr().err
