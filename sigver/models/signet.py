"""SigNet and its two published variants (Hafemann, Sabourin & Oliveira, 2017).

Layer and parameter names follow the reference implementation
(``luizgh/sigver``, ``sigver/featurelearning/models/signet.py``) exactly, so the
first element of a checkpoint published with it loads with ``load_state_dict``
unchanged: ``conv_layers.conv1.conv.weight``, ``conv_layers.conv1.bn.running_mean``,
..., ``fc_layers.fc2.bn.num_batches_tracked``.

Every convolution / fully connected layer is bias-free and followed by
BatchNorm and ReLU; the network maps a 1x150x220 image (ink high, values in
[0, 1]) to the output of its last fully connected block.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from sigver.models._layers import FeatureNet, conv_bn_relu, linear_bn_relu
from sigver.models.registry import register_model

__all__ = [
    "SigNet",
    "SigNetSmaller",
    "SigNetThin",
    "SigNet_smaller",
    "SigNet_thin",
    "signet",
    "signet_smaller",
    "signet_thin",
]


def _signet_layers(
    conv: int, conv3: int, fc: int, *, conv4: bool = True, fc2: bool = True
) -> tuple[nn.Sequential, nn.Sequential]:
    """The reference SigNet layout, block names included, at the given widths.

    ``conv`` is the width of conv2 and conv5, ``conv3`` that of conv3/conv4 and
    ``fc`` that of the fully connected layers. Names never shift when a block is
    dropped (``SigNet_smaller`` goes from conv3 to conv5), so reference state
    dicts load as they are.
    """
    blocks: list[tuple[str, nn.Module]] = [
        ("conv1", conv_bn_relu(1, 96, 11, stride=4)),
        ("maxpool1", nn.MaxPool2d(3, 2)),
        ("conv2", conv_bn_relu(96, conv, 5, pad=2)),
        ("maxpool2", nn.MaxPool2d(3, 2)),
        ("conv3", conv_bn_relu(conv, conv3, 3, pad=1)),
    ]
    if conv4:
        blocks.append(("conv4", conv_bn_relu(conv3, conv3, 3, pad=1)))
    blocks += [("conv5", conv_bn_relu(conv3, conv, 3, pad=1)), ("maxpool3", nn.MaxPool2d(3, 2))]
    fcs: list[tuple[str, nn.Module]] = [("fc1", linear_bn_relu(conv * 3 * 5, fc))]
    if fc2:
        fcs.append(("fc2", linear_bn_relu(fc, fc)))
    return nn.Sequential(OrderedDict(blocks)), nn.Sequential(OrderedDict(fcs))


class _SigNetFamily(FeatureNet):
    """Shared forward pass: conv blocks, flatten, fully connected blocks."""

    conv_layers: nn.Sequential
    fc_layers: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 1, 150, 220)`` inputs in [0, 1] to ``(N, feature_space_size)`` features."""
        # flatten(1) is the reference's view(N, C * 3 * 5) (C-order), without its
        # hard-coded size so a wrong input size fails in fc1 with a shape error.
        return self.fc_layers(torch.flatten(self.conv_layers(x), 1))


class SigNet(_SigNetFamily):
    """SigNet as published: five convolutions, three max-pools, two 2048-unit FC layers.

    ===========  ==================================  ===============
    block        layer                               output (N, ...)
    ===========  ==================================  ===============
    conv1        96 @ 11x11, stride 4                96 x 35 x 53
    maxpool1     3x3, stride 2                       96 x 17 x 26
    conv2        256 @ 5x5, pad 2                    256 x 17 x 26
    maxpool2     3x3, stride 2                       256 x 8 x 12
    conv3        384 @ 3x3, pad 1                    384 x 8 x 12
    conv4        384 @ 3x3, pad 1                    384 x 8 x 12
    conv5        256 @ 3x3, pad 1                    256 x 8 x 12
    maxpool3     3x3, stride 2                       256 x 3 x 5
    fc1          3840 -> 2048                        2048
    fc2          2048 -> 2048                        2048
    ===========  ==================================  ===============
    """

    arch = "signet"
    feature_space_size = 2048

    def __init__(self) -> None:
        super().__init__()
        self.conv_layers, self.fc_layers = _signet_layers(256, 384, 2048)


class SigNetThin(_SigNetFamily):
    """``SigNet_thin``: 128 channels from conv2 on, 1024-unit FC layers (1024-d features)."""

    arch = "signet_thin"
    feature_space_size = 1024

    def __init__(self) -> None:
        super().__init__()
        self.conv_layers, self.fc_layers = _signet_layers(128, 128, 1024)


class SigNetSmaller(_SigNetFamily):
    """``SigNet_smaller``: SigNet without conv4 and fc2 (2048-d features from fc1).

    The remaining blocks keep their reference names (``conv5`` follows ``conv3``).
    """

    arch = "signet_smaller"
    feature_space_size = 2048

    def __init__(self) -> None:
        super().__init__()
        self.conv_layers, self.fc_layers = _signet_layers(256, 384, 2048, conv4=False, fc2=False)


#: Reference spellings of the variant class names.
SigNet_thin = SigNetThin
SigNet_smaller = SigNetSmaller


@register_model("signet")
def signet() -> SigNet:
    """Build :class:`SigNet` (2048-d features, ~15.8 M parameters)."""
    return SigNet()


@register_model("signet_thin")
def signet_thin() -> SigNetThin:
    """Build :class:`SigNetThin` (1024-d features)."""
    return SigNetThin()


@register_model("signet_smaller")
def signet_smaller() -> SigNetSmaller:
    """Build :class:`SigNetSmaller` (2048-d features)."""
    return SigNetSmaller()
