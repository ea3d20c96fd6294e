"""Building blocks shared by the architectures.

The block and attribute names (``conv``/``bn``/``relu``, ``fc``/``bn``/``relu``)
are part of the state-dict layout that checkpoints published with the reference
SigNet implementation use, so they must not change.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
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

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """Named blocks in forward order: the ``conv_layers`` children, then ``fc_layers``'.

        These are the units of ``sigver train --freeze N`` and ``--layer NAME``.
        """
        out: list[tuple[str, nn.Module]] = []
        for part in ("conv_layers", "fc_layers"):
            seq = getattr(self, part, None)
            if isinstance(seq, nn.Sequential):
                out.extend(seq.named_children())
        return out

    def trainable_blocks(self) -> list[str]:
        """Names of the blocks that have parameters (pools and flattening have none)."""
        return [name for name, m in self.blocks() if any(True for _ in m.parameters())]

    def layer_names(self) -> list[str]:
        """Block names accepted by :meth:`forward_to`."""
        return [name for name, _ in self.blocks()]

    def forward_to(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Features at the output of block ``layer``, as ``(N, D)``.

        Convolutional outputs are average-pooled to a 2 x 3 grid (top/bottom x
        left/centre/right, the layout SigResNet keeps) and flattened, so any
        layer gives a fixed-size vector whatever the input size; the last
        block's output equals :meth:`forward`.

        Raises
        ------
        ModelError
            If ``layer`` is not one of :meth:`layer_names`.
        """
        from torch.nn import functional as F

        from sigver.errors import ModelError

        names = self.layer_names()
        if layer not in names:
            raise ModelError(f"{self.arch}: no layer {layer!r}; layers: {', '.join(names)}")
        for part in ("conv_layers", "fc_layers"):
            if part == "fc_layers":
                x = torch.flatten(x, 1)
            for name, module in getattr(self, part).named_children():
                x = module(x)
                if name == layer:
                    break
            else:
                continue
            break
        if x.ndim == 4:
            x = torch.flatten(F.adaptive_avg_pool2d(x, (2, 3)), 1)
        return x
