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


class SigNet(FeatureNet):
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
        self.conv_layers = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", conv_bn_relu(1, 96, 11, stride=4)),
                    ("maxpool1", nn.MaxPool2d(3, 2)),
                    ("conv2", conv_bn_relu(96, 256, 5, pad=2)),
                    ("maxpool2", nn.MaxPool2d(3, 2)),
                    ("conv3", conv_bn_relu(256, 384, 3, pad=1)),
                    ("conv4", conv_bn_relu(384, 384, 3, pad=1)),
                    ("conv5", conv_bn_relu(384, 256, 3, pad=1)),
                    ("maxpool3", nn.MaxPool2d(3, 2)),
                ]
            )
        )
        self.fc_layers = nn.Sequential(
            OrderedDict(
                [
                    ("fc1", linear_bn_relu(256 * 3 * 5, 2048)),
                    ("fc2", linear_bn_relu(2048, 2048)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 1, 150, 220)`` inputs in [0, 1] to ``(N, 2048)`` features."""
        x = self.conv_layers(x)
        # flatten(1) is the reference's view(N, 256 * 3 * 5) (C-order), without its
        # hard-coded size so a wrong input size fails in fc1 with a shape error.
        return self.fc_layers(torch.flatten(x, 1))


class SigNetThin(FeatureNet):
    """``SigNet_thin``: 128 channels from conv2 on, 1024-unit FC layers (1024-d features)."""

    arch = "signet_thin"
    feature_space_size = 1024

    def __init__(self) -> None:
        super().__init__()
        self.conv_layers = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", conv_bn_relu(1, 96, 11, stride=4)),
                    ("maxpool1", nn.MaxPool2d(3, 2)),
                    ("conv2", conv_bn_relu(96, 128, 5, pad=2)),
                    ("maxpool2", nn.MaxPool2d(3, 2)),
                    ("conv3", conv_bn_relu(128, 128, 3, pad=1)),
                    ("conv4", conv_bn_relu(128, 128, 3, pad=1)),
                    ("conv5", conv_bn_relu(128, 128, 3, pad=1)),
                    ("maxpool3", nn.MaxPool2d(3, 2)),
                ]
            )
        )
        self.fc_layers = nn.Sequential(
            OrderedDict(
                [
                    ("fc1", linear_bn_relu(128 * 3 * 5, 1024)),
                    ("fc2", linear_bn_relu(1024, 1024)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 1, 150, 220)`` inputs in [0, 1] to ``(N, 1024)`` features."""
        return self.fc_layers(torch.flatten(self.conv_layers(x), 1))


class SigNetSmaller(FeatureNet):
    """``SigNet_smaller``: SigNet without conv4 and fc2 (2048-d features from fc1).

    The remaining blocks keep their reference names (``conv5`` follows ``conv3``).
    """

    arch = "signet_smaller"
    feature_space_size = 2048

    def __init__(self) -> None:
        super().__init__()
        self.conv_layers = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", conv_bn_relu(1, 96, 11, stride=4)),
                    ("maxpool1", nn.MaxPool2d(3, 2)),
                    ("conv2", conv_bn_relu(96, 256, 5, pad=2)),
                    ("maxpool2", nn.MaxPool2d(3, 2)),
                    ("conv3", conv_bn_relu(256, 384, 3, pad=1)),
                    ("conv5", conv_bn_relu(384, 256, 3, pad=1)),
                    ("maxpool3", nn.MaxPool2d(3, 2)),
                ]
            )
        )
        self.fc_layers = nn.Sequential(OrderedDict([("fc1", linear_bn_relu(256 * 3 * 5, 2048))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 1, 150, 220)`` inputs in [0, 1] to ``(N, 2048)`` features."""
        return self.fc_layers(torch.flatten(self.conv_layers(x), 1))


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
