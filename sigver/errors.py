"""Exception hierarchy shared by the library, the CLI and the service.

Every error a user can cause (bad file, unknown dataset, missing model...)
is a :class:`SigverError` so that the CLI can turn it into a one-line message
and an exit status instead of a traceback.
"""

from __future__ import annotations


class SigverError(Exception):
    """Base class for all errors raised deliberately by sigver."""


class ImageError(SigverError, ValueError):
    """An image could not be read or does not contain a usable signature.

    Parameters
    ----------
    source : str
        File name (or a description such as ``"<bytes>"``) of the offending image.
    reason : str
        Human-readable reason.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class DatasetError(SigverError):
    """A dataset folder, manifest or cache is missing or malformed."""


class ModelError(SigverError):
    """A model or checkpoint is missing, corrupt or incompatible."""
