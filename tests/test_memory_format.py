"""channels_last changes which kernels run, never what a train step computes (beyond float noise);
models without convolutions keep their layout."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from vizlab.models import build_model
from vizlab.run.memory_format import choose_memory_format, has_convolutions


@pytest.mark.parametrize("name", ["cnn", "resnet", "inception"])
def test_a_train_step_in_channels_last_matches_the_default_layout(name):
    torch.manual_seed(0)
    model = build_model(name)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        m = copy.deepcopy(model).to(memory_format=fmt)
        loss = F.cross_entropy(m(x.contiguous(memory_format=fmt)), y)
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in m.parameters()]))
    (loss_a, ga), (loss_b, gb) = grads
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for a, b in zip(ga, gb):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_models_without_convolutions_keep_their_layout():
    model = build_model("mlp")
    assert not has_convolutions(model)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    assert choose_memory_format(model, x, y) == torch.contiguous_format


def test_choosing_leaves_the_model_and_the_random_state_alone():
    model = build_model("cnn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    state = torch.get_rng_state()
    choose_memory_format(model, x, y)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(state, torch.get_rng_state())


def test_a_layout_is_measured_once_and_then_remembered(tmp_path):
    from vizlab.run.memory_format import remembered_layout

    calls = []

    def measure():
        calls.append(1)
        return torch.channels_last

    path = tmp_path / "cache" / "layouts.json"
    assert remembered_layout(path, "k", measure) == "channels_last"
    assert remembered_layout(path, "k", lambda: torch.contiguous_format) == "channels_last"
    assert len(calls) == 1
    path.write_text("[not a dict]")  # a damaged cache is measured again, not trusted
    assert remembered_layout(path, "k", lambda: torch.contiguous_format) == "contiguous"
