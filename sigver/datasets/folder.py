"""Generic reader for any dataset described by a CSV manifest.

The manifest has a header row with (at least) the columns ``path``, ``user``
and ``label``::

    path,user,label
    alice/1.png,alice,genuine
    alice/f1.png,alice,skilled
    bob/1.png,bob,0

``path`` is relative to the manifest's folder (absolute paths are accepted
too); ``label`` is ``genuine``/``skilled``/``simple`` or ``0``/``1``/``2``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from sigver.datasets.base import (
    GENUINE,
    LABEL_NAMES,
    SIMPLE,
    SKILLED,
    DatasetReader,
    Sample,
    ScanResult,
    finish_scan,
)
from sigver.errors import DatasetError

#: File looked for when ``scan`` is given a folder instead of a CSV file.
DEFAULT_MANIFEST = "manifest.csv"

_REQUIRED_COLUMNS = ("path", "user", "label")
_LABELS: dict[str, int] = {
    "genuine": GENUINE,
    "skilled": SKILLED,
    "simple": SIMPLE,
    "0": GENUINE,
    "1": SKILLED,
    "2": SIMPLE,
}


def parse_label(text: str) -> int:
    """Parse a manifest label (``genuine``/``skilled``/``simple`` or ``0``/``1``/``2``).

    Parameters
    ----------
    text : str
        Label as written in the manifest (case and surrounding spaces ignored).

    Returns
    -------
    int
        0, 1 or 2.

    Raises
    ------
    DatasetError
        For any other value.
    """
    label = _LABELS.get(text.strip().lower())
    if label is None:
        raise DatasetError(
            f"unknown label {text!r} (expected one of {', '.join(LABEL_NAMES)} or 0, 1, 2)"
        )
    return label


class FolderReader(DatasetReader):
    """Dataset listed in a CSV manifest (``path,user,label``).

    ``scan`` accepts the manifest file itself or a folder that contains
    ``manifest.csv``. Files present on disk but absent from the manifest are
    not looked for: the manifest is the source of truth, so ``unmatched`` is
    always empty.
    """

    name = "folder"
    description = "any layout listed in a CSV manifest with columns path,user,label"

    def classify(self, relpath: Path) -> tuple[str, int] | None:  # pragma: no cover - unused
        # The manifest, not the file name, says who wrote what.
        return None

    def scan(self, path: str | os.PathLike[str]) -> ScanResult:
        """Read the manifest and check that every listed file exists.

        Parameters
        ----------
        path : str or PathLike
            Manifest CSV, or a folder containing ``manifest.csv``.

        Returns
        -------
        ScanResult
            Samples sorted by user, label and file; ``root`` is the manifest's folder.

        Raises
        ------
        DatasetError
            If the manifest is missing, lacks a required column, has a bad
            row (empty field, unknown label, duplicate path) or names a file
            that does not exist; the message names the manifest line.
        """
        manifest = Path(path)
        if manifest.is_dir():
            manifest = manifest / DEFAULT_MANIFEST
        if not manifest.is_file():
            raise DatasetError(
                f"manifest not found: {manifest} (pass a CSV file with columns path,user,label, "
                f"or a folder containing {DEFAULT_MANIFEST})"
            )
        root = manifest.parent
        samples: list[Sample] = []
        seen: dict[Path, int] = {}  # by resolved path: a/../a/1.png is a/1.png
        try:
            with manifest.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                header = [c.strip().lower() for c in (reader.fieldnames or [])]
                missing = [c for c in _REQUIRED_COLUMNS if c not in header]
                if missing:
                    raise DatasetError(
                        f"{manifest}: line 1: header must contain path,user,label "
                        f"(missing {', '.join(missing)}; got {', '.join(header) or 'nothing'})"
                    )
                reader.fieldnames = header
                for row in reader:
                    line = reader.line_num
                    samples.append(self._parse_row(row, manifest, root, line, seen))
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{manifest}: not a UTF-8 text file ({exc.reason})") from exc
        except csv.Error as exc:
            raise DatasetError(f"{manifest}: malformed CSV: {exc}") from exc
        return finish_scan(self.name, root, samples, [])

    @staticmethod
    def _parse_row(
        row: dict[str | None, str | list[str] | None],
        manifest: Path,
        root: Path,
        line: int,
        seen: dict[Path, int],
    ) -> Sample:
        where = f"{manifest}: line {line}"
        if None in row:
            raise DatasetError(f"{where}: more fields than header columns")
        values: dict[str, str] = {}
        for column in _REQUIRED_COLUMNS:
            value = row.get(column)
            if not isinstance(value, str) or not value.strip():
                raise DatasetError(f"{where}: empty or missing {column!r}")
            values[column] = value.strip()
        try:
            label = parse_label(values["label"])
        except DatasetError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        file = Path(values["path"])
        if not file.is_absolute():
            file = root / file
        if not file.is_file():
            raise DatasetError(f"{where}: file not found: {values['path']} (looked at {file})")
        key = file.resolve()
        if key in seen:
            raise DatasetError(f"{where}: {values['path']} is already listed on line {seen[key]}")
        seen[key] = line
        return Sample(file, values["user"], label)
