"""Images kept as uint8 on the device (the CUDA default) give exactly the float32 path's numbers:
checked on the CPU, where both paths can run."""

from __future__ import annotations

import pytest
import torch
from idxdata import write_idx_dataset
from test_engine import Collect, step_losses

from vizlab.config import build_config
from vizlab.data.loading import load_splits
from vizlab.data.resident import ResidentImages
from vizlab.events import EpochEnd
from vizlab.report import Reporter
from vizlab.run.prepare import build_engine, prepare_run


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(write_idx_dataset(tmp_path_factory.mktemp("data"), n_train=320, n_test=100))


def test_uint8_images_read_back_as_the_float32_ones(data_dir):
    plain = load_splits("mnist", data_dir, val_split=40, seed=3)
    packed = load_splits("mnist", data_dir, val_split=40, seed=3, uint8=True)
    assert isinstance(packed.train_x, ResidentImages) and packed.train_x.pixels.dtype == torch.uint8
    assert packed.train_x.pixels.element_size() * 4 == plain.train_x.element_size()
    assert len(packed.train_x) == len(plain.train_x) and packed.train_x.shape == plain.train_x.shape
    idx = torch.randperm(len(plain.train_x), generator=torch.Generator().manual_seed(0))[:64]
    for a, b in ((plain.train_x, packed.train_x), (plain.test_x, packed.test_x),
                 (plain.val_x, packed.val_x)):
        assert torch.equal(a[idx % len(a)], b[idx % len(b)])  # bit for bit
        assert torch.equal(a[5:17], b[5:17])
    with pytest.raises(TypeError):
        ResidentImages(plain.train_x, 0.0, 1.0)
    assert load_splits("mnist", data_dir, device="cpu").train_x.dtype == torch.float32


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_training_on_uint8_images_is_the_same_run(data_dir, model):
    cfg = build_config(model, epochs=2, batch_size=32, data_dir=data_dir, visdom=False,
                       progress="off", device="cpu")
    runs = []
    for uint8 in (False, True):
        sink = Collect()
        splits = load_splits("mnist", data_dir, uint8=uint8)
        prep = prepare_run(cfg, device=torch.device("cpu"), splits=splits)
        assert build_engine(prep, None, Reporter([sink])).run().status == "finished"
        runs.append(sink)
    assert step_losses(runs[0]) == step_losses(runs[1])
    assert [e.test_acc for e in runs[0].of(EpochEnd)] == [e.test_acc for e in runs[1].of(EpochEnd)]
