"""The hidden-layer activations every model accepts (``--activation``), by name.

Three views of the same function: ``make_activation`` gives an ``nn.Module`` for layer stacks,
``activation_fn`` the plain function (for models on raw tensors, like ``mlp-raw``), and
``activation_curve`` evaluates a function and its derivative on a grid, for plotting them side
by side. Every name uses torch's defaults (leaky_relu's negative slope is 0.01, as in seed 004).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vizlab.errors import VizlabError
from vizlab.models import ACTIVATIONS

__all__ = ["activation_curve", "activation_fn", "make_activation"]

# name -> (module class, functional form). Module-level functions only (no lambdas), so a
# model holding one still pickles.
_TABLE: dict[str, tuple[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]]] = {
    "relu": (nn.ReLU, F.relu),
    "leaky_relu": (nn.LeakyReLU, F.leaky_relu),
    "elu": (nn.ELU, F.elu),
    "selu": (nn.SELU, F.selu),
    "gelu": (nn.GELU, F.gelu),
    "silu": (nn.SiLU, F.silu),
    "softplus": (nn.Softplus, F.softplus),
    "tanh": (nn.Tanh, torch.tanh),
    "sigmoid": (nn.Sigmoid, torch.sigmoid),
}
assert tuple(_TABLE) == ACTIVATIONS, "activations.py and models.ACTIVATIONS disagree"


def _lookup(name: str):
    try:
        return _TABLE[name]
    except KeyError:
        raise VizlabError(f"unknown --activation {name!r}; choose from {', '.join(ACTIVATIONS)}") from None


def make_activation(name: str) -> nn.Module:
    """A fresh activation layer, e.g. ``make_activation("gelu") -> nn.GELU()``."""
    return _lookup(name)[0]()


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The functional form, e.g. ``activation_fn("relu") is torch.nn.functional.relu``."""
    return _lookup(name)[1]


def activation_curve(name: str, xs: torch.Tensor | Sequence[float]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate activation ``name`` and its derivative at the points ``xs``.

    Returns two 1-D float tensors ``(ys, dys)``. The derivative comes from autograd, so it is
    exactly what training back-propagates (relu's derivative at 0 is 0, as torch defines it).
    """
    fn = _lookup(name)[1]
    x = torch.as_tensor(xs, dtype=torch.float32).detach().flatten().clone().requires_grad_(True)
    with torch.enable_grad():
        y = fn(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), dy.detach()
