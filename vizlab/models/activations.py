"""The hidden-layer activations every model accepts (``--activation``), by name.

Three views of the same function: ``make_activation`` gives an ``nn.Module`` for layer stacks,
``activation_fn`` the plain function (for parameter-free activations), and ``activation_curve``
evaluates a function and the gradient training uses on a grid, for plotting them side by side.
Every name uses torch's defaults (leaky_relu's negative slope is 0.01, as in seed 004; prelu's
learnable slope starts at 0.25, one per layer).

``binary`` is seed 001's step function, f(x) = 1 for x >= 0 else 0. Its true derivative is 0
almost everywhere, so nothing could learn through it: it is trained with a straight-through
gradient (Bengio et al. 2013; the saturated form of Hubara et al. 2016): the backward pass
treats the step as the identity where |x| <= 1 and passes no gradient outside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vizlab.errors import VizlabError
from vizlab.models import ACTIVATIONS

__all__ = ["Binary", "activation_curve", "activation_fn", "binary_step", "has_parameters",
           "make_activation"]



class _StraightThroughStep(torch.autograd.Function):
    """Forward: the 0/1 step. Backward: the gradient passes where |x| <= 1, else 0."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def binary_step(x: torch.Tensor) -> torch.Tensor:
    """Seed 001's step, 1 where x >= 0 else 0, with the straight-through gradient (module doc)."""
    return _StraightThroughStep.apply(x)


class Binary(nn.Module):
    """The binary step activation (seed 001), trained with a straight-through gradient: the
    backward pass uses 1 where |x| <= 1 and 0 elsewhere instead of the step's zero derivative."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return binary_step(x)


# name -> (module class, functional form or None when the activation has parameters).
# Module-level functions only (no lambdas), so a model holding one still pickles.
_TABLE: dict[str, tuple[type[nn.Module], Callable[[torch.Tensor], torch.Tensor] | None]] = {
    "relu": (nn.ReLU, F.relu),
    "leaky_relu": (nn.LeakyReLU, F.leaky_relu),
    "elu": (nn.ELU, F.elu),
    "selu": (nn.SELU, F.selu),
    "gelu": (nn.GELU, F.gelu),
    "silu": (nn.SiLU, F.silu),
    "softplus": (nn.Softplus, F.softplus),
    "tanh": (nn.Tanh, torch.tanh),
    "sigmoid": (nn.Sigmoid, torch.sigmoid),
    "binary": (Binary, binary_step),
    "mish": (nn.Mish, F.mish),
    "hardswish": (nn.Hardswish, F.hardswish),
    "prelu": (nn.PReLU, None),  # a learnable slope: a layer only
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


def has_parameters(name: str) -> bool:
    """Whether the activation learns something (prelu's slope): then it exists as a layer only."""
    return _lookup(name)[1] is None


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The functional form, e.g. ``activation_fn("relu") is torch.nn.functional.relu``.
    Activations with parameters (prelu) have none: use ``make_activation``."""
    fn = _lookup(name)[1]
    if fn is None:
        raise VizlabError(f"--activation {name} has a learnable parameter: it exists as a layer "
                          f"(make_activation) only")
    return fn


def activation_curve(name: str, xs: torch.Tensor | Sequence[float]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate activation ``name`` and the gradient training uses at the points ``xs``.

    Returns two 1-D float tensors ``(ys, dys)``. The gradient comes from autograd through a fresh
    layer, so it is exactly what training back-propagates: relu's at 0 is 0, as torch defines
    it; binary's is its straight-through gradient; prelu's is at its initial slope (0.25).
    """
    layer = make_activation(name)
    x = torch.as_tensor(xs, dtype=torch.float32).detach().flatten().clone().requires_grad_(True)
    with torch.enable_grad():
        y = layer(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), dy.detach()
