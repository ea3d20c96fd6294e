"""Core types shared by every dataset reader.

A reader only looks at file *names*: it walks a folder, decides for each file
which user wrote it and whether it is genuine or a forgery, and reports the
files it could not classify instead of dropping them silently. Reading and
preprocessing the images is left to :mod:`sigver.preprocessing`.
"""

from __future__ import annotations

import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sigver.errors import DatasetError

logger = logging.getLogger(__name__)

#: Label of a genuine signature.
GENUINE = 0
#: Label of a skilled forgery (made by someone who practised the signature).
SKILLED = 1
#: Label of a simple forgery (forger knew the name but not the signature).
SIMPLE = 2

#: Human-readable names of the labels, indexed by label.
LABEL_NAMES: tuple[str, str, str] = ("genuine", "skilled", "simple")

#: Image file extensions the readers accept (compared case-insensitively).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    # No .gif: read_image does not decode GIF, so its files are reported as unmatched
    # rather than scanned and then skipped one by one.
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".pbm"}
)

#: How many unmatched files are named in log messages and summaries.
MAX_EXAMPLES = 5

_NATURAL_SPLIT = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders embedded numbers numerically (``"u2" < "u10"``).

    Parameters
    ----------
    text : str
        String to build the key for.

    Returns
    -------
    tuple
        Key comparing digit runs as integers and other runs as strings; the
        ``(0, n)`` / ``(1, s)`` tags keep numbers and text comparable.
    """
    parts = _NATURAL_SPLIT.split(text)
    key: list[tuple[int, int | str]] = []
    for i, part in enumerate(parts):
        if i % 2:
            key.append((0, int(part)))
        elif part:
            key.append((1, part))
    return tuple(key)


@dataclass(frozen=True)
class Sample:
    """One signature image of a dataset.

    Parameters
    ----------
    path : Path
        Location of the image file.
    user : str
        Identifier of the user whose signature this is (for forgeries: the
        user being imitated, never the forger).
    label : int
        0 genuine, 1 skilled forgery, 2 simple forgery.
    """

    path: Path
    user: str
    label: int

    def __post_init__(self) -> None:
        if self.label not in (GENUINE, SKILLED, SIMPLE):
            raise DatasetError(f"{self.path}: label must be 0, 1 or 2, got {self.label!r}")
        if not self.user:
            raise DatasetError(f"{self.path}: empty user id")

    @property
    def user_key(self) -> tuple:
        """Natural sort key of :attr:`user`."""
        return natural_key(self.user)


def sample_sort_key(sample: Sample) -> tuple:
    """Deterministic order of samples: user, then label, then file name."""
    return (sample.user_key, sample.label, path_sort_key(sample.path))


def path_sort_key(path: Path) -> tuple:
    """Case-insensitive natural order of paths (exact spelling breaks ties)."""
    text = path.as_posix()
    return (natural_key(text.casefold()), text)


@dataclass(frozen=True)
class ScanResult:
    """What a reader found in a dataset folder.

    Parameters
    ----------
    samples : list of Sample
        Recognised signatures, sorted by user, label, then file.
    unmatched : list of Path
        Files that match none of the reader's naming rules (sorted).
    root : Path
        Folder the scan started from; file names stored in caches are
        relative to it.
    """

    samples: list[Sample]
    unmatched: list[Path] = field(default_factory=list)
    root: Path = Path(".")

    @property
    def users(self) -> list[str]:
        """Distinct user ids in sample order."""
        return list(dict.fromkeys(s.user for s in self.samples))

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """Number of (genuine, skilled, simple) samples per user, in user order."""
        table: dict[str, list[int]] = {}
        for s in self.samples:
            table.setdefault(s.user, [0, 0, 0])[s.label] += 1
        return {user: (c[0], c[1], c[2]) for user, c in table.items()}

    def relative_name(self, path: Path) -> str:
        """``path`` relative to :attr:`root` with ``/`` separators (absolute if outside)."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()


class DatasetReader(ABC):
    """Base class of dataset readers.

    Subclasses set :attr:`name` and :attr:`description` and implement
    :meth:`classify`, which maps one file (relative to the scanned folder) to
    ``(user, label)`` or ``None``. :meth:`scan` does the walking, sorting and
    reporting.
    """

    #: Registry name (``--dataset`` value).
    name: str = ""
    #: One-line description shown by ``sigver datasets --list``.
    description: str = ""

    @property
    def canvas_size(self) -> tuple[int, int]:
        """Canvas (height, width) used to centre this dataset's signatures.

        Taken from :data:`sigver.preprocessing.CANVAS_SIZES` by reader name,
        falling back to its ``"default"`` entry.
        """
        # Imported here: preprocessing pulls in OpenCV, which `sigver --help` must not pay for.
        from sigver.preprocessing import CANVAS_SIZES

        size = CANVAS_SIZES.get(self.name, CANVAS_SIZES["default"])
        return (int(size[0]), int(size[1]))

    @abstractmethod
    def classify(self, relpath: Path) -> tuple[str, int] | None:
        """Identify one file.

        Parameters
        ----------
        relpath : Path
            File path relative to the scanned folder.

        Returns
        -------
        tuple of (str, int) or None
            ``(user, label)`` when the name follows the dataset convention,
            ``None`` otherwise.
        """

    def scan(self, path: str | os.PathLike[str]) -> ScanResult:
        """Find every signature under ``path``.

        Parameters
        ----------
        path : str or PathLike
            Dataset folder (searched recursively).

        Returns
        -------
        ScanResult
            Samples sorted by user, label and file, plus unmatched files.

        Raises
        ------
        DatasetError
            If ``path`` is not a folder or contains no recognisable signature.
        """
        root = Path(path)
        if not root.exists():
            raise DatasetError(f"dataset path does not exist: {root}")
        if not root.is_dir():
            raise DatasetError(f"{self.name}: expected a folder, got a file: {root}")
        samples: list[Sample] = []
        unmatched: list[Path] = []
        for file in _walk_files(root):
            rel = file.relative_to(root)
            found = None
            if file.suffix.lower() in IMAGE_EXTENSIONS:
                found = self.classify(rel)
            if found is None:
                unmatched.append(file)
            else:
                samples.append(Sample(file, found[0], found[1]))
        return finish_scan(self.name, root, samples, unmatched)


def finish_scan(name: str, root: Path, samples: list[Sample], unmatched: list[Path]) -> ScanResult:
    """Sort, report and validate the outcome of a scan (shared by all readers).

    Parameters
    ----------
    name : str
        Reader name, for messages.
    root : Path
        Scanned folder (or manifest folder).
    samples : list of Sample
        Recognised samples, any order.
    unmatched : list of Path
        Files that were not recognised.

    Returns
    -------
    ScanResult

    Raises
    ------
    DatasetError
        If no sample was recognised.
    """
    samples = sorted(samples, key=sample_sort_key)
    unmatched = sorted(unmatched, key=path_sort_key)
    if unmatched:
        logger.warning(
            "%s: %d file(s) under %s match no naming rule and were ignored, e.g. %s",
            name,
            len(unmatched),
            root,
            ", ".join(_rel(p, root) for p in unmatched[:MAX_EXAMPLES]),
        )
    if not samples:
        hint = ""
        if unmatched:
            hint = f"; {len(unmatched)} unrecognised file(s), e.g. " + ", ".join(
                _rel(p, root) for p in unmatched[:MAX_EXAMPLES]
            )
        raise DatasetError(
            f"no {name} signatures found under {root} (is this the right --dataset?){hint}"
        )
    result = ScanResult(samples=samples, unmatched=unmatched, root=root)
    logger.debug("%s: %d samples of %d users under %s", name, len(samples), len(result.users), root)
    return result


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _walk_files(root: Path) -> Iterable[Path]:
    """All regular files under ``root``, in a platform-independent order."""
    # os.walk order depends on the file system; sort so scans are reproducible.
    # Linked folders are followed (a dataset assembled from links is common); each real
    # folder is visited once, so a link back up the tree cannot loop.
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name
