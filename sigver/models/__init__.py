"""Writer-independent feature extractors: architectures, registry and checkpoints.

One module per architecture (:mod:`~sigver.models.signet` holds the published
SigNet family, :mod:`~sigver.models.sigresnet` a compact CPU-friendly network,
:mod:`~sigver.models.ensemble` trained extractors side by side);
each registers its builders, so after ``import sigver.models``::

    >>> from sigver.models import get_model, available_models
    >>> available_models()
    ['ensemble', 'signet', 'signet_smaller', 'signet_thin', 'sigresnet']
    >>> model = get_model("signet")          # 2048-d features

Checkpoints (:mod:`~sigver.models.checkpoint`) carry the architecture, the
preprocessing preset, the training recipe and metrics, and are verified by
sha256 on load; checkpoints published with the reference implementation load too.
"""

from __future__ import annotations

from sigver.models import ensemble as _ensemble  # noqa: F401  (registers builders)
from sigver.models import signet as _signet  # noqa: F401  (registers builders)
from sigver.models import sigresnet as _sigresnet  # noqa: F401  (registers builders)
from sigver.models._layers import FeatureNet
from sigver.models.ensemble import SigEnsemble
from sigver.models.registry import available_models, get_model, get_model_builder, register_model
from sigver.models.signet import SigNet, SigNetSmaller, SigNetThin
from sigver.models.sigresnet import SigResNet

__all__ = [
    "FeatureNet",
    "SigEnsemble",
    "SigNet",
    "SigNetSmaller",
    "SigNetThin",
    "SigResNet",
    "available_models",
    "get_model",
    "get_model_builder",
    "register_model",
]
