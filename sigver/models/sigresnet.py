"""SigResNet: a compact residual feature extractor sized for CPU training.

The published SigNet costs about 0.6 GMAC per 150x220 image, which makes a
useful training run take days on a laptop-class CPU. SigResNet keeps SigNet's
contract (1x150x220 input in [0, 1], bias-free layers followed by BatchNorm and
ReLU, features taken after a final FC-BN-ReLU block) with a cheaper body:

* ``stem``: 5x5 stride-2 convolution, then 3x3 stride-2 max-pool (1/4 resolution);
* four stages of one basic residual block each (two 3x3 convolutions), the
  last three halving the resolution;
* adaptive average pooling to a 2x3 grid, which keeps the coarse left/centre/
  right and top/bottom layout of the signature that a global pool would lose;
* ``fc_layers.fc1``: linear -> BatchNorm -> ReLU giving ``feature_dim`` features.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from sigver.errors import ModelError
from sigver.models._layers import FeatureNet, conv_bn_relu, linear_bn_relu
from sigver.models.registry import register_model

__all__ = ["BasicBlock", "SigResNet", "sigresnet"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                OrderedDict(
                    [
                        ("conv", nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)),
                        ("bn", nn.BatchNorm2d(out_channels)),
                    ]
                )
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block forward pass."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SigResNet(FeatureNet):
    """Compact residual network for signatures (see the module docstring).

    Parameters
    ----------
    widths : sequence of 4 int
        Channels of the four stages; the stem has ``widths[0]`` channels.
    feature_dim : int
        Size of the feature vector (units of the final FC block).
    """

    arch = "sigresnet"

    def __init__(
        self, *, widths: Sequence[int] = (32, 64, 128, 256), feature_dim: int = 1024
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4 or min(widths) < 1 or feature_dim < 1:
            raise ModelError(
                f"sigresnet needs 4 positive widths and feature_dim >= 1, "
                f"got widths={widths}, feature_dim={feature_dim}"
            )
        self.widths = widths
        self.feature_space_size = int(feature_dim)
        self.conv_layers = nn.Sequential(
            OrderedDict(
                [
                    ("stem", conv_bn_relu(1, widths[0], 5, stride=2, pad=2)),
                    ("maxpool1", nn.MaxPool2d(3, 2, padding=1)),
                    ("stage1", BasicBlock(widths[0], widths[0])),
                    ("stage2", BasicBlock(widths[0], widths[1], stride=2)),
                    ("stage3", BasicBlock(widths[1], widths[2], stride=2)),
                    ("stage4", BasicBlock(widths[2], widths[3], stride=2)),
                    ("pool", nn.AdaptiveAvgPool2d((2, 3))),
                ]
            )
        )
        self.fc_layers = nn.Sequential(
            OrderedDict([("fc1", linear_bn_relu(widths[3] * 2 * 3, self.feature_space_size))])
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each residual branch: every block starts as the
        # identity, which speeds up and stabilises short training runs.
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def config(self) -> dict[str, object]:
        """Builder keyword arguments that rebuild this architecture."""
        return {"widths": list(self.widths), "feature_dim": self.feature_space_size}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 1, 150, 220)`` inputs in [0, 1] to ``(N, feature_dim)`` features."""
        return self.fc_layers(torch.flatten(self.conv_layers(x), 1))


@register_model("sigresnet")
def sigresnet(*, widths: Sequence[int] = (32, 64, 128, 256), feature_dim: int = 1024) -> SigResNet:
    """Build :class:`SigResNet`.

    Parameters
    ----------
    widths : sequence of 4 int
        Stage widths.
    feature_dim : int
        Feature vector size.
    """
    return SigResNet(widths=widths, feature_dim=feature_dim)
