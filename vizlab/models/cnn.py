"""The convolutional networks of seed note 002: a LeNet-like CNN, a GoogLeNet-style net built
from the note's InceptionA block, and a net with two residual blocks.

All take images (N, 1, 28, 28) and return logits (N, 10). ``activation`` replaces every hidden
ReLU of the note (the one applied to a residual sum included); the logits stay linear, as in
the note. Each stage runs conv, max-pool, then the activation: the note activates before
pooling, which is the same function for ReLU (max-pool commutes with any non-decreasing
function) and evaluates the activation on a quarter of the values.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from vizlab.models.activations import make_activation

__all__ = [
    "CNN",
    "Inception",
    "InceptionA",
    "ResNet",
    "ResidualBlock",
    "build_cnn",
    "build_inception",
    "build_resnet",
]


def _stage(n: int, conv: nn.Module, activation: str) -> list[tuple[str, nn.Module]]:
    """conv -> 2x2 max-pool -> activation, named conv{n}, pool{n}, act{n}."""
    return [(f"conv{n}", conv), (f"pool{n}", nn.MaxPool2d(2)),
            (f"act{n}", make_activation(activation))]


def _head(features: int, activation: str, n: int) -> list[tuple[str, nn.Module]]:
    """flatten -> features->64 -> activation -> 64->10 logits."""
    return [("flatten", nn.Flatten()), ("fc1", nn.Linear(features, 64)),
            (f"act{n}", make_activation(activation)), ("fc2", nn.Linear(64, 10))]


class CNN(nn.Sequential):
    """Seed 002's CNN (26,474 parameters).

    conv 1->10 5x5, max-pool 2, act; conv 10->20 5x5, max-pool 2, act; flatten 320;
    linear 320->64, act; linear 64->10.
    """

    def __init__(self, activation: str = "relu"):
        super().__init__(OrderedDict(
            _stage(1, nn.Conv2d(1, 10, kernel_size=5), activation)      # 10 x 12 x 12
            + _stage(2, nn.Conv2d(10, 20, kernel_size=5), activation)   # 20 x 4 x 4
            + _head(320, activation, 3)
        ))


class ResidualBlock(nn.Module):
    """Seed 002's residual block: two 3x3 convs c->c (padding 1);
    ``y = act(conv1(x)); y = act(conv2(y)); out = act(x + y)``.

    As in the note, the activation runs after the second conv too, before the sum.
    """

    def __init__(self, channels: int, activation: str = "relu"):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.act2 = make_activation(activation)
        self.act_sum = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.conv1(x))
        y = self.act2(self.conv2(y))
        return self.act_sum(x + y)


class ResNet(nn.Sequential):
    """Seed 002's residual net (35,534 parameters).

    conv 1->10 5x5, max-pool 2, act, ResidualBlock(10); conv 10->20 5x5, max-pool 2, act,
    ResidualBlock(20); flatten 320; linear 320->64, act; linear 64->10.
    """

    def __init__(self, activation: str = "relu"):
        super().__init__(OrderedDict(
            _stage(1, nn.Conv2d(1, 10, kernel_size=5), activation)
            + [("res1", ResidualBlock(10, activation))]                 # 10 x 12 x 12
            + _stage(2, nn.Conv2d(10, 20, kernel_size=5), activation)
            + [("res2", ResidualBlock(20, activation))]                 # 20 x 4 x 4
            + _head(320, activation, 3)
        ))


class InceptionA(nn.Module):
    """Seed 002's InceptionA block: four branches concatenated to 24+16+24+24 = 88 channels.

    avg-pool 3x3 (stride 1, pad 1) then 1x1 conv to 24; 1x1 conv to 16; 1x1 to 16 then 5x5 to
    24 (pad 2); 1x1 to 16 then 3x3 to 24 then 3x3 to 24 (pad 1). The spatial size is kept.
    As in the note, the branches are linear (no activation inside the block).
    """

    out_channels = 88

    def __init__(self, in_channels: int):
        super().__init__()
        self.pool_branch = nn.Sequential(OrderedDict(
            pool=nn.AvgPool2d(kernel_size=3, stride=1, padding=1),
            conv=nn.Conv2d(in_channels, 24, kernel_size=1)))
        self.branch1x1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5 = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_channels, 16, kernel_size=1),
            conv2=nn.Conv2d(16, 24, kernel_size=5, padding=2)))
        self.branch3x3 = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_channels, 16, kernel_size=1),
            conv2=nn.Conv2d(16, 24, kernel_size=3, padding=1),
            conv3=nn.Conv2d(24, 24, kernel_size=3, padding=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.pool_branch(x), self.branch1x1(x),
                          self.branch5x5(x), self.branch3x3(x)), dim=1)


class Inception(nn.Sequential):
    """A working version of seed 002's GoogLeNet-style net (174,034 parameters).

    conv 1->10 5x5, max-pool 2, act, InceptionA(10) -> 88 x 12 x 12; conv 88->20 5x5,
    max-pool 2, act, InceptionA(20) -> 88 x 4 x 4; flatten 1408; linear 1408->64, act;
    linear 64->10.

    The note's code cannot run as written: it builds the InceptionA blocks but never calls
    them, applies its conv 88->20 to the 10 channels that conv1 produces, gives its "3x3" and
    "5x5" branches kernel size 1, pools with ``AvgPool2d(3, padding=1)`` and keeps the CNN's
    320-wide head. vizlab's choices: the blocks are called after each stage (so conv2 really
    sees 88 channels), the branches have the kernel sizes their names promise (padded to keep
    the spatial size), the stages pool with max-pool 2 like the note's CNN, and the head is
    1408 = 88 x 4 x 4 wide.
    """

    def __init__(self, activation: str = "relu"):
        super().__init__(OrderedDict(
            _stage(1, nn.Conv2d(1, 10, kernel_size=5), activation)
            + [("inception1", InceptionA(10))]                          # 88 x 12 x 12
            + _stage(2, nn.Conv2d(InceptionA.out_channels, 20, kernel_size=5), activation)
            + [("inception2", InceptionA(20))]                          # 88 x 4 x 4
            + _head(InceptionA.out_channels * 4 * 4, activation, 3)
        ))


def build_cnn(activation: str = "relu") -> CNN:
    """The ``cnn`` model (seed 002)."""
    return CNN(activation)


def build_resnet(activation: str = "relu") -> ResNet:
    """The ``resnet`` model (seed 002)."""
    return ResNet(activation)


def build_inception(activation: str = "relu") -> Inception:
    """The ``inception`` model (seed 002, made to run)."""
    return Inception(activation)
