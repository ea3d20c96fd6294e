"""Building blocks shared by the architectures.

The block and attribute names (``conv``/``bn``/``relu``, ``fc``/``bn``/``relu``)
are part of the state-dict layout that checkpoints published with the reference
SigNet implementation use, so they must not change.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


def conv_bn_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    pad: int = 0,
    groups: int = 1,
) -> nn.Sequential:
    """Convolution without bias, then BatchNorm and ReLU.

    The convolution has no bias because the BatchNorm shift that follows makes it
    redundant.
    """
    return nn.Sequential(
        OrderedDict(
            [
                (
                    "conv",
                    nn.Conv2d(
                        in_channels,
                        out_channels,
                        kernel_size,
                        stride,
                        pad,
                        groups=groups,
                        bias=False,
                    ),
                ),
                ("bn", nn.BatchNorm2d(out_channels)),
                ("relu", nn.ReLU()),
            ]
        )
    )


def linear_bn_relu(in_features: int, out_features: int) -> nn.Sequential:
    """Fully connected layer without bias, then BatchNorm and ReLU."""
    return nn.Sequential(
        OrderedDict(
            [
                ("fc", nn.Linear(in_features, out_features, bias=False)),
                ("bn", nn.BatchNorm1d(out_features)),
                ("relu", nn.ReLU()),
            ]
        )
    )


class FeatureNet(nn.Module):
    """Common interface of the writer-independent feature extractors.

    Subclasses set :attr:`arch` (registry name), :attr:`feature_space_size`
    (the attribute name the reference implementation uses) and build their layers;
    ``forward`` maps ``(N, 1, H, W)`` float inputs in [0, 1] to ``(N, feature_dim)``.
    """

    arch: str = ""
    #: Input (height, width) the network was designed for: 150x220 crops of the
    #: 170x242 preprocessed images.
    input_size: tuple[int, int] = (150, 220)
    feature_space_size: int = 0

    @property
    def feature_dim(self) -> int:
        """Dimension of the feature vector ``forward`` returns."""
        return int(self.feature_space_size)

    def config(self) -> dict[str, object]:
        """Builder keyword arguments that rebuild this architecture (JSON-able)."""
        return {}
