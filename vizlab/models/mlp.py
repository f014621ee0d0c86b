"""The MLPs of seed note 004: one on raw weight tensors, one built from ``nn.Sequential``.

Both take images (N, 1, 28, 28) (or already-flat (N, 784)) and return logits (N, 10).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from vizlab.models.activations import activation_fn, has_parameters, make_activation

__all__ = ["MLP", "RawMLP", "build_mlp", "build_mlp_raw"]

IN_FEATURES = 28 * 28
CLASSES = 10


class RawMLP(nn.Module):
    """Seed 004's low-level MLP, 784-200-200-10, on raw weight tensors (no ``nn.Linear``).

    Weights ``w1`` 200x784, ``w2`` 200x200, ``w3`` 10x200 start Kaiming-normal, biases
    ``b1``-``b3`` start at zero, and each layer is ``x @ w.t() + b``, as in the note. They are
    registered as ``nn.Parameter``s, so ``model.parameters()`` hands them to any ordinary
    optimizer (the note listed the six tensors to ``optim.SGD`` by hand).

    One deliberate difference: the seed also applies ReLU to the logits. vizlab does not. A
    ReLU there clips every negative logit to 0 and passes no gradient through it: a wrong class
    can never be pushed below zero, and a right class whose logit went negative gets no gradient
    to pull it back up, so learning slows and can stall. The logits stay linear, as
    cross-entropy expects.
    """

    def __init__(self, activation: str = "relu", hidden: int = 200):
        super().__init__()
        self.activation = activation
        if has_parameters(activation):  # prelu: a learnable slope per hidden layer
            self.act1, self.act2 = make_activation(activation), make_activation(activation)
        else:  # module-level functions, as the note applies F.relu: still picklable
            self.act1 = self.act2 = activation_fn(activation)
        self.w1 = nn.Parameter(torch.empty(hidden, IN_FEATURES))
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.empty(hidden, hidden))
        self.b2 = nn.Parameter(torch.zeros(hidden))
        self.w3 = nn.Parameter(torch.empty(CLASSES, hidden))
        self.b3 = nn.Parameter(torch.zeros(CLASSES))
        for w in (self.w1, self.w2, self.w3):
            nn.init.kaiming_normal_(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        x = self.act1(x @ self.w1.t() + self.b1)
        x = self.act2(x @ self.w2.t() + self.b2)
        return x @ self.w3.t() + self.b3  # logits: no activation (see the class docstring)

    def extra_repr(self) -> str:
        return f"784-{self.w1.shape[0]}-{self.w2.shape[0]}-10, activation={self.activation}"


class MLP(nn.Sequential):
    """Seed 004's ``nn.Sequential`` MLP: 784-h1-...-hk-10, the activation after each hidden layer.

    The default 784-200-200-10 with leaky_relu is the note's network; ``hidden=(512, 512)`` is
    seed 000's and ``hidden=(512, 256, 128, 64)`` seed 002's. Layers use ``nn.Linear``'s own
    initialisation, as the notes do.

    One deliberate difference: the seed also applies the activation to the logits. vizlab does
    not: an activation there squashes or clips the logits (LeakyReLU shrinks every negative one
    a hundredfold), which fights cross-entropy and slows learning. The logits stay linear.
    """

    def __init__(self, activation: str = "leaky_relu", hidden: tuple[int, ...] = (200, 200)):
        widths = (IN_FEATURES, *hidden)
        layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
        for i, (n_in, n_out) in enumerate(zip(widths, widths[1:]), start=1):
            layers += [(f"fc{i}", nn.Linear(n_in, n_out)), (f"act{i}", make_activation(activation))]
        layers.append((f"fc{len(widths)}", nn.Linear(widths[-1], CLASSES)))  # logits
        super().__init__(OrderedDict(layers))


def build_mlp_raw(activation: str = "relu") -> RawMLP:
    """The ``mlp-raw`` model: 784-200-200-10 on raw tensors."""
    return RawMLP(activation=activation)


def build_mlp(activation: str = "leaky_relu", hidden: tuple[int, ...] = (200, 200)) -> MLP:
    """The ``mlp`` model: 784-``hidden``-10 from ``nn.Sequential``."""
    return MLP(activation=activation, hidden=tuple(hidden))
