"""Name -> builder registry for the feature-extractor architectures.

Architectures register themselves with :func:`register_model` when their module
is imported (``sigver.models`` imports them all), so ``get_model("signet")`` works
as soon as ``sigver.models`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from sigver.errors import ModelError

__all__ = ["available_models", "get_model", "get_model_builder", "register_model"]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[F], F]:
    """Class/function decorator adding a builder to the registry under ``name``."""

    def decorator(builder: F) -> F:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} registered twice")
        _BUILDERS[name] = builder
        return builder

    return decorator


def available_models() -> list[str]:
    """Names accepted by :func:`get_model`, sorted."""
    return sorted(_BUILDERS)


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    """Return the builder registered under ``name``.

    Raises
    ------
    ModelError
        If no architecture has that name.
    """
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ModelError(
            f"unknown architecture {name!r}; available: {', '.join(available_models())}"
        ) from None


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a freshly initialised architecture by name.

    Parameters
    ----------
    name : str
        Registry name, see :func:`available_models`.
    **kwargs
        Keyword-only options of that architecture's builder.

    Returns
    -------
    torch.nn.Module
        The model; its ``forward`` maps ``(N, 1, 150, 220)`` float inputs in [0, 1]
        to ``(N, model.feature_dim)`` features.
    """
    builder = get_model_builder(name)
    try:
        return builder(**kwargs)
    except TypeError as exc:
        raise ModelError(f"bad options for architecture {name!r}: {exc}") from exc
