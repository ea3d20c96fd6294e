"""SigEnsemble: several trained extractors run side by side, features concatenated.

Trained extractors that saw different corpora and recipes make different
mistakes; the writer-dependent SVM of one user can use all their features at
once. An ensemble is *built* from trained checkpoints (``scripts/build_ensemble.py``),
never trained: its members keep their weights, and its forward pass is the
concatenation ``[phi_1(x), ..., phi_k(x)]`` of the members' final features. All
members must share one preprocessing preset (one input for all of them); the
builder checks it.

Because the per-user SVM scales every dimension to unit variance, squared
distances between feature vectors grow with the number of members, so an
ensemble's checkpoint carries its own RBF ``gamma`` in
:attr:`~sigver._meta.WeightsMeta.classifier` (the members' divided by their
number); enrollment, evaluation and calibration read it from there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sigver.errors import ModelError
from sigver.models._layers import FeatureNet
from sigver.models.registry import get_model, register_model

__all__ = ["FEATURES_LAYER", "SigEnsemble", "ensemble", "ensemble_classifier_params"]

#: The only layer an ensemble exposes: the concatenated final features.
FEATURES_LAYER = "features"


def _member_spec(spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("arch"), str):
        raise ModelError(
            f"ensemble member must be {{'arch': name, 'arch_config': {{...}}}}, got {spec!r}"
        )
    arch = spec["arch"]
    if arch == SigEnsemble.arch:
        raise ModelError("an ensemble cannot contain another ensemble")
    config = spec.get("arch_config") or {}
    if not isinstance(config, Mapping):
        raise ModelError(f"ensemble member {arch!r}: arch_config must be a mapping")
    return arch, dict(config)


def ensemble_classifier_params(n_members: int) -> dict[str, float]:
    """SVM overrides for ``n_members`` concatenated 1-model feature spaces.

    After the per-user scaling every dimension has unit variance, so the squared
    distance between two concatenated vectors is the sum of the members'; dividing
    the RBF ``gamma`` by the number of members keeps one member's kernel width.
    """
    from sigver.usermodel import DEFAULT_CLASSIFIER_PARAMS

    if n_members < 1:
        raise ModelError(f"n_members must be >= 1, got {n_members}")
    return {"gamma": float(DEFAULT_CLASSIFIER_PARAMS["gamma"]) / n_members}


class SigEnsemble(FeatureNet):
    """Concatenation of the final features of several extractors.

    Parameters
    ----------
    members : sequence of mapping
        One ``{"arch": name, "arch_config": {...}}`` per member, in feature order
        (the layout of :meth:`config`); at least two.
    """

    arch = "ensemble"

    def __init__(self, *, members: Sequence[Mapping[str, Any]]) -> None:
        super().__init__()
        specs = [_member_spec(m) for m in members]
        if len(specs) < 2:
            raise ModelError(f"an ensemble needs at least 2 members, got {len(specs)}")
        self.members = nn.ModuleList(get_model(arch, **cfg) for arch, cfg in specs)
        sizes = {tuple(m.input_size) for m in self.members}
        if len(sizes) != 1:
            raise ModelError(f"ensemble members take different input sizes: {sorted(sizes)}")
        self.input_size = sizes.pop()
        self.feature_space_size = sum(m.feature_dim for m in self.members)

    def config(self) -> dict[str, object]:
        """Builder keyword arguments that rebuild this architecture."""
        members = [{"arch": m.arch, "arch_config": dict(m.config())} for m in self.members]
        return {"members": members}

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """None: an ensemble is assembled from trained members, not trained or frozen by blocks."""
        return []

    def layer_names(self) -> list[str]:
        """Only the concatenated final features (:data:`FEATURES_LAYER`)."""
        return [FEATURES_LAYER]

    def forward_to(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """The final features; other layers would mix the members' feature spaces.

        Raises
        ------
        ModelError
            For any layer but :data:`FEATURES_LAYER`.
        """
        if layer != FEATURES_LAYER:
            raise ModelError(
                f"ensemble: no layer {layer!r}; an ensemble only gives its members' final "
                f"features ({FEATURES_LAYER!r}); for an earlier layer use a member model"
            )
        return self(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 1, H, W)`` inputs in [0, 1] to ``(N, sum of member feature_dim)``."""
        return torch.cat([m(x) for m in self.members], dim=1)


@register_model("ensemble")
def ensemble(*, members: Sequence[Mapping[str, Any]]) -> SigEnsemble:
    """Build :class:`SigEnsemble` (untrained members; load a built checkpoint for weights).

    Parameters
    ----------
    members : sequence of mapping
        ``{"arch": name, "arch_config": {...}}`` per member.
    """
    return SigEnsemble(members=members)
