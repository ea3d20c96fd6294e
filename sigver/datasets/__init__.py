"""Dataset readers: find the signatures of a dataset and label them from file names.

Usage::

    from sigver.datasets import get_reader

    reader = get_reader("sigcomp2011")
    result = reader.scan("/data/sigcomp2011")
    for sample in result.samples:
        print(sample.path, sample.user, sample.label)  # label: 0 genuine, 1 skilled, 2 simple

Readers are stateless singletons kept in a registry; :func:`register_reader`
adds a new one.
"""

from __future__ import annotations

from sigver.datasets.base import (
    GENUINE,
    IMAGE_EXTENSIONS,
    LABEL_NAMES,
    SIMPLE,
    SKILLED,
    DatasetReader,
    Sample,
    ScanResult,
    natural_key,
)
from sigver.datasets.folder import FolderReader, parse_label
from sigver.datasets.readers import (
    BHSig260Reader,
    BrazilianReader,
    CEDARReader,
    GPDSReader,
    GPDSSyntheticReader,
    MCYTReader,
    SigComp2011Reader,
)
from sigver.errors import DatasetError

__all__ = [
    "GENUINE",
    "IMAGE_EXTENSIONS",
    "LABEL_NAMES",
    "SIMPLE",
    "SKILLED",
    "BHSig260Reader",
    "BrazilianReader",
    "CEDARReader",
    "DatasetReader",
    "FolderReader",
    "GPDSReader",
    "GPDSSyntheticReader",
    "MCYTReader",
    "Sample",
    "ScanResult",
    "SigComp2011Reader",
    "available_readers",
    "get_reader",
    "natural_key",
    "parse_label",
    "register_reader",
]

_REGISTRY: dict[str, DatasetReader] = {}


def register_reader(reader: DatasetReader, *, replace: bool = False) -> None:
    """Add a reader to the registry under ``reader.name``.

    Parameters
    ----------
    reader : DatasetReader
        Reader instance; its ``name`` must be a non-empty lower-case string.
    replace : bool, default False
        Allow replacing an existing reader with the same name.

    Raises
    ------
    ValueError
        If the name is empty, not lower-case, or already taken and ``replace`` is false.
    """
    name = reader.name
    if not name or name != name.lower():
        raise ValueError(f"reader name must be a non-empty lower-case string, got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"a reader named {name!r} is already registered")
    _REGISTRY[name] = reader


def available_readers() -> list[str]:
    """Names of the registered readers, sorted."""
    return sorted(_REGISTRY)


def get_reader(name: str) -> DatasetReader:
    """Return the reader registered as ``name`` (case-insensitive).

    Parameters
    ----------
    name : str
        Dataset name, e.g. ``"gpds"`` or ``"sigcomp2011"``.

    Returns
    -------
    DatasetReader

    Raises
    ------
    DatasetError
        If no reader has that name; the message lists the available ones.
    """
    reader = _REGISTRY.get(name.strip().lower())
    if reader is None:
        raise DatasetError(f"unknown dataset {name!r}; available: {', '.join(available_readers())}")
    return reader


for _reader in (
    GPDSReader(),
    GPDSSyntheticReader(),
    MCYTReader(),
    CEDARReader(),
    BrazilianReader(),
    BHSig260Reader(),
    SigComp2011Reader(),
    FolderReader(),
):
    register_reader(_reader)
del _reader
