"""The model registry, the seed models, activations, the layer table, users' own models and
the `vizlab models` command."""

from __future__ import annotations

import itertools
import math
import textwrap
import uuid

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from vizlab.cli import cli, main
from vizlab.errors import VizlabError
from vizlab.models import ACTIVATIONS, MODELS, build_model
from vizlab.models.activations import activation_curve, activation_fn, make_activation
from vizlab.models.mlp import build_mlp, build_mlp_raw
from vizlab.models.summary import count_parameters, format_shape, summarize
from vizlab.models.user import load_user_model

ACTIVATION_TYPES = {type(make_activation(name)) for name in ACTIVATIONS}


def images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


# --- seed models ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, hidden, expected", [
    ("mlp-raw", None, 199_210),
    ("mlp", None, 199_210),
    ("mlp", (512, 512), 669_706),             # seed 000
    ("mlp", (512, 256, 128, 64), 575_050),    # seed 002
    ("cnn", None, 26_474),
    ("resnet", None, 35_534),
    ("inception", None, 174_034),
])
def test_parameter_counts(name, hidden, expected):
    model = build_model(name, hidden=hidden)
    assert count_parameters(model) == expected
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected


@pytest.mark.parametrize("name, activation", list(itertools.product(MODELS, ACTIVATIONS)))
def test_every_model_with_every_activation_maps_images_to_logits(name, activation):
    torch.manual_seed(0)
    model = build_model(name, activation=activation)
    assert all(p.device.type == "cpu" for p in model.parameters())
    out = model(images(3))
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()
    if name != "mlp-raw":
        # The flag replaced every hidden activation: no other kind is left anywhere.
        used = {type(m) for m in model.modules()} & ACTIVATION_TYPES
        assert used == {type(make_activation(activation))}


@pytest.mark.parametrize("name", MODELS)
def test_logits_are_linear(name):
    """No activation after the last layer: ReLU models still produce negative logits."""
    torch.manual_seed(0)
    model = build_model(name, activation="relu")
    assert (model(images(16)) < 0).any()
    if name != "mlp-raw":
        assert isinstance(list(model.children())[-1], nn.Linear)


def test_resnet_activation_reaches_the_residual_sum():
    model = build_model("resnet", activation="tanh")
    assert all(isinstance(block.act_sum, nn.Tanh) for block in (model.res1, model.res2))
    assert (model.res1(torch.full((1, 10, 12, 12), 5.0)) <= 1).all()  # tanh bounds the sum


def test_mlp_hidden_widths_and_flat_input():
    model = build_mlp(hidden=(64, 32, 16))
    widths = [(m.in_features, m.out_features) for m in model if isinstance(m, nn.Linear)]
    assert widths == [(784, 64), (64, 32), (32, 16), (16, 10)]
    x = images(4)
    assert torch.equal(model(x), model(x.view(4, 784)))


def test_mlp_raw_has_raw_parameters_and_no_linear():
    torch.manual_seed(0)
    model = build_mlp_raw()
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {"w1": (200, 784), "b1": (200,), "w2": (200, 200), "b2": (200,),
                      "w3": (10, 200), "b3": (10,)}
    assert all((getattr(model, b) == 0).all() for b in ("b1", "b2", "b3"))
    # Kaiming-normal (fan in): std sqrt(2 / 784) for w1, from 156,800 samples.
    assert model.w1.std().item() == pytest.approx((2 / 784) ** 0.5, rel=0.03)


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
def test_mlp_raw_forward_is_the_notes_formula_without_logit_activation(activation):
    torch.manual_seed(0)
    m = build_mlp_raw(activation)
    x = images(5)
    f = activation_fn(activation)
    h = f(x.view(5, -1) @ m.w1.t() + m.b1)
    h = f(h @ m.w2.t() + m.b2)
    torch.testing.assert_close(m(x), h @ m.w3.t() + m.b3)


def test_mlp_raw_trains_with_an_ordinary_optimizer():
    torch.manual_seed(0)
    model = build_mlp_raw()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(images(8)), torch.arange(8))
    loss.backward()
    optimizer.step()
    for name, p in model.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not move"


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_weights(name):
    torch.manual_seed(3)
    a = build_model(name).state_dict()
    torch.manual_seed(3)
    b = build_model(name).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- activations ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [a for a in ACTIVATIONS if a != "binary"])
def test_activation_curve_derivative_matches_finite_differences(name):
    xs = torch.linspace(-3, 3, 61, dtype=torch.float64)
    xs = xs[xs.abs() > 0.05]  # away from relu's kink
    xs = xs[(xs.abs() - 3).abs() > 0.05]  # and hardswish's
    ys, dys = activation_curve(name, xs)
    assert ys.shape == dys.shape == xs.shape
    torch.testing.assert_close(ys, make_activation(name)(xs.float()))
    h = 1e-3
    layer = make_activation(name).double()
    with torch.no_grad():
        numeric = (layer(xs + h) - layer(xs - h)) / (2 * h)
    torch.testing.assert_close(dys.double(), numeric, atol=2e-3, rtol=2e-3)


def test_binary_is_the_step_of_seed_001_with_a_straight_through_gradient():
    xs = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    ys, dys = activation_curve("binary", xs)
    assert ys.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]  # f(x) = 1 for x >= 0, else 0
    assert dys.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # 1 where |x| <= 1
    # The functional form and the layer agree, and the gradient reaches the first layer.
    assert torch.equal(activation_fn("binary")(xs), make_activation("binary")(xs))
    torch.manual_seed(0)
    model = build_model("mlp", activation="binary")
    nn.functional.cross_entropy(model(images(8)), torch.arange(8)).backward()
    assert model.fc1.weight.grad.abs().sum() > 0


def test_mish_hardswish_prelu_values():
    ys, _ = activation_curve("mish", [1.0])
    assert ys.item() == pytest.approx(math.tanh(math.log1p(math.e)))  # x tanh(softplus(x))
    ys, dys = activation_curve("hardswish", [-4.0, 1.0, 4.0])
    assert ys.tolist() == pytest.approx([0.0, 2 / 3, 4.0]) and dys.tolist()[2] == 1.0
    ys, dys = activation_curve("prelu", [-2.0, 2.0])
    assert ys.tolist() == pytest.approx([-0.5, 2.0]) and dys.tolist() == pytest.approx([0.25, 1])


@pytest.mark.parametrize("name", ["mlp", "mlp-raw", "cnn"])
def test_prelu_slopes_are_learned(name):
    torch.manual_seed(0)
    model = build_model(name, activation="prelu")
    slopes = [p for n, p in model.named_parameters() if n.endswith(".weight") and p.numel() == 1]
    assert slopes and all(p.item() == 0.25 for p in slopes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    nn.functional.cross_entropy(model(images(8)), torch.arange(8)).backward()
    optimizer.step()
    assert any(p.item() != 0.25 for p in slopes)


def test_prelu_has_no_plain_function():
    with pytest.raises(VizlabError, match="learnable parameter"):
        activation_fn("prelu")


def test_activation_help_names_the_straight_through_gradient():
    for command in ("run", "compare"):
        result = CliRunner().invoke(cli, [command, "--help"])
        text = " ".join(result.output.split()).replace("straight- through", "straight-through")
        assert "binary is the 0/1 step, trained with a straight-through gradient" in text


def test_activation_curve_known_values():
    ys, dys = activation_curve("relu", [-1.0, 0.0, 2.0])
    assert ys.tolist() == [0.0, 0.0, 2.0] and dys.tolist() == [0.0, 0.0, 1.0]
    ys, dys = activation_curve("leaky_relu", [-2.0])
    assert ys.item() == pytest.approx(-0.02) and dys.item() == pytest.approx(0.01)
    _, dys = activation_curve("sigmoid", [0.0])
    assert dys.item() == pytest.approx(0.25)


def test_unknown_activation_names_the_choices():
    with pytest.raises(VizlabError, match="unknown --activation 'swish'; choose from relu"):
        make_activation("swish")
    with pytest.raises(VizlabError):
        build_model("cnn", activation="swish")


# --- layer table ------------------------------------------------------------------------------

def test_summary_of_cnn():
    summary = summarize(build_model("cnn"))
    table = [(r.name, r.kind, r.output_shape, r.params) for r in summary]
    assert table == [
        ("conv1", "Conv2d", (1, 10, 24, 24), 260),
        ("pool1", "MaxPool2d", (1, 10, 12, 12), 0),
        ("act1", "ReLU", (1, 10, 12, 12), 0),
        ("conv2", "Conv2d", (1, 20, 8, 8), 5020),
        ("pool2", "MaxPool2d", (1, 20, 4, 4), 0),
        ("act2", "ReLU", (1, 20, 4, 4), 0),
        ("flatten", "Flatten", (1, 320), 0),
        ("fc1", "Linear", (1, 64), 20544),
        ("act3", "ReLU", (1, 64), 0),
        ("fc2", "Linear", (1, 10), 650),
    ]
    assert summary.total == summary.trainable == 26_474
    assert summary.input_shape == (1, 1, 28, 28) and summary.output_shape == (1, 10)


@pytest.mark.parametrize("name", MODELS)
def test_summary_rows_add_up_to_the_total(name):
    model = build_model(name)
    summary = summarize(model, input_shape=(3, 1, 28, 28))
    assert sum(r.params for r in summary if not r.block) == summary.total == count_parameters(model)
    assert summary.output_shape == (3, 10)


def test_summary_of_blocks_and_raw_parameters():
    rows = {r.name: r for r in summarize(build_model("inception"))}
    block = rows["inception1"]
    assert block.block and block.output_shape == (1, 88, 12, 12) and block.params == 19_104
    assert rows["inception1.branch5x5.conv2"].depth == 2
    assert rows["inception2"].output_shape == (1, 88, 4, 4)
    raw = summarize(build_mlp_raw())
    assert [(r.name, r.kind, r.output_shape) for r in raw] == [
        ("w1", "Parameter", (200, 784)), ("b1", "Parameter", (200,)),
        ("w2", "Parameter", (200, 200)), ("b2", "Parameter", (200,)),
        ("w3", "Parameter", (10, 200)), ("b3", "Parameter", (10,))]
    assert raw.total == 199_210 and raw.output_shape == (1, 10)


def test_summary_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.BatchNorm1d(16), nn.Linear(16, 10))
    model.train()
    stats = model[2].running_mean.clone()
    summary = summarize(model)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(model[2].running_mean, stats)
    assert not model[1]._forward_hooks and not model[1]._forward_pre_hooks
    assert summary.total == 784 * 16 + 16 + 32 + 170


def test_format_shape():
    assert format_shape((1, 10, 24, 24)) == "[1, 10, 24, 24]"
    assert format_shape(((2, 3), (4,))) == "[2, 3], [4]"
    assert format_shape(None) == "--"


# --- a user's own model -----------------------------------------------------------------------

GOOD = """
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))
"""


def write(path, source):
    path.write_text(textwrap.dedent(source))
    return path


def test_user_model_from_a_file(tmp_path):
    path = write(tmp_path / "mynet.py", GOOD)
    model = load_user_model(f"{path}:Net")
    assert type(model).__name__ == "Net" and count_parameters(model) == 7850
    assert build_model(f"{path}:Net")(images()).shape == (2, 10)


def test_user_model_file_imports_its_neighbours(tmp_path):
    write(tmp_path / "widths_helper.py", "HIDDEN = 32\n")
    path = write(tmp_path / "net2.py", """
        import torch.nn as nn
        from widths_helper import HIDDEN

        def Net():  # a factory works as well as a class
            return nn.Sequential(nn.Flatten(), nn.Linear(784, HIDDEN), nn.Linear(HIDDEN, 10))
    """)
    assert count_parameters(load_user_model(f"{path}:Net")) == 784 * 32 + 32 + 330


def test_user_model_from_a_package_in_the_working_directory(tmp_path, monkeypatch):
    package = f"userpkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    write(tmp_path / package / "nets.py", GOOD)
    monkeypatch.chdir(tmp_path)
    model = load_user_model(f"{package}.nets:Net")
    assert model(images()).shape == (2, 10)


BAD = {
    "syntax": ("def broken(:\n", "could not import {path}: SyntaxError"),
    "import": ("import no_such_module_xyz\n", "could not import {path}: "
               "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    "missing class": (GOOD, "{path} has no 'Missing'; it defines Net"),
    "not a module": ("class Missing:\n    pass\n", "is not a torch.nn.Module subclass"),
    "not callable": ("Missing = 3\n", "is a int, not a torch.nn.Module class"),
    "constructor": ("""
        import torch.nn as nn
        class Missing(nn.Module):
            def __init__(self, width):
                super().__init__()
        """, "Missing() failed (vizlab builds it with no arguments): TypeError"),
    "returns other": ("def Missing():\n    return [1]\n",
                      "Missing() returned a list, not a torch.nn.Module"),
    "no parameters": ("import torch.nn as nn\nclass Missing(nn.Module):\n    pass\n",
                      "Missing has no trainable parameters"),
    "forward fails": ("""
        import torch.nn as nn
        class Missing(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(100, 10)
            def forward(self, x):
                return self.fc(x)
        """, "Missing failed on a (2, 1, 28, 28) batch of images: RuntimeError"),
    "wrong shape": ("""
        import torch.nn as nn
        class Missing(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(784, 5)
            def forward(self, x):
                return self.fc(x.flatten(1))
        """, "Missing maps a (2, 1, 28, 28) batch to (2, 5); vizlab needs (2, 10) logits"),
    "tuple output": ("""
        import torch.nn as nn
        class Missing(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(784, 10)
            def forward(self, x):
                return self.fc(x.flatten(1)), x
        """, "Missing returned a tuple for a (2, 1, 28, 28) batch"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_user_model_is_one_clear_line(tmp_path, case):
    source, expected = BAD[case]
    path = write(tmp_path / f"bad_{case.replace(' ', '_')}.py", source)
    with pytest.raises(VizlabError) as info:
        load_user_model(f"{path}:Missing")
    message = str(info.value)
    assert expected.format(path=path) in message
    assert "\n" not in message


@pytest.mark.parametrize("spec, expected", [
    ("nowhere/net.py:Net", "no such file: nowhere/net.py"),
    ("no_such_package_xyz.nets:Net", "could not import module 'no_such_package_xyz.nets'"),
    ("net.py:", "a model of your own is given as path/to/file.py:ClassName"),
])
def test_bad_user_model_spec(spec, expected):
    with pytest.raises(VizlabError, match=expected):
        load_user_model(spec)


# --- `vizlab models` --------------------------------------------------------------------------

def test_models_command_lists_every_model_with_its_size():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    for name, count in [("mlp-raw", "199,210"), ("cnn", "26,474"), ("inception", "174,034"),
                        ("resnet", "35,534")]:
        line = next(line for line in result.output.splitlines() if f" {name} " in line)
        assert count in line


def test_models_command_shows_a_layer_table():
    result = CliRunner().invoke(cli, ["models", "cnn"])
    assert result.exit_code == 0, result.output
    assert "[1, 10, 24, 24]" in result.output and "Total params: 26,474" in result.output
    conv2 = next(line for line in result.output.splitlines() if " conv2 " in line)
    assert "Conv2d" in conv2 and "5,020" in conv2


def test_models_command_options_and_user_models(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["models", "mlp", "--hidden", "512-256-128-64",
                                 "--activation", "tanh"])
    assert result.exit_code == 0, result.output
    assert "Total params: 575,050" in result.output and "Tanh" in result.output
    path = write(tmp_path / "mine.py", GOOD)
    result = runner.invoke(cli, ["models", f"{path}:Net"])
    assert result.exit_code == 0, result.output
    assert "Total params: 7,850" in result.output


@pytest.mark.parametrize("args, expected", [
    (["models", "nope"], "vizlab: error: unknown model 'nope'; choose from mlp-raw, mlp, cnn"),
    (["models", "cnn", "--activation", "swish"], "unknown --activation 'swish'"),
    (["models", "cnn", "--hidden", "64-32"], "--hidden applies to mlp only, not cnn"),
    (["models", "mlp", "--hidden", "64,32"], "--hidden must be widths joined by dashes"),
])
def test_models_command_bad_input_exits_2(args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
