"""Readers for the public signature datasets, each one a file-naming convention.

Every reader matches *file names* (case-insensitively, extension excluded)
and ignores the folder layout where the name alone is unambiguous, so that
flattened or re-nested copies of a dataset still scan correctly.
"""

from __future__ import annotations

import re
from pathlib import Path

from sigver.datasets.base import GENUINE, SIMPLE, SKILLED, DatasetReader


class GPDSReader(DatasetReader):
    """GPDS-960 / GPDS-300: ``NNN/c-NNN-MM.*`` genuine, ``NNN/cf-NNN-MM.*`` skilled.

    The user id is the number in the file name as written (e.g. ``"001"``),
    which is also the folder name in the distributed layout.
    """

    name = "gpds"
    description = "GPDS-960/GPDS-300: NNN/c-NNN-MM.* genuine, NNN/cf-NNN-MM.* skilled forgery"
    _pattern = re.compile(r"(c|cf)-(\d+)-(\d+)", re.IGNORECASE)

    def classify(self, relpath: Path) -> tuple[str, int] | None:
        m = self._pattern.fullmatch(relpath.stem)
        if m is None:
            return None
        label = SKILLED if m.group(1).lower() == "cf" else GENUINE
        return m.group(2), label


class GPDSSyntheticReader(GPDSReader):
    """GPDS Synthetic (and ``sigver synth`` output): GPDS naming, larger canvas.

    The original corpus has 24 genuine signatures and 30 forgeries per user;
    the reader does not enforce those counts.
    """

    name = "gpds-synthetic"
    description = (
        "GPDS Synthetic / `sigver synth` output: c-NNN-MM.* genuine, cf-NNN-MM.* forgery "
        "(24 + 30 per user), larger canvas"
    )


class MCYTReader(DatasetReader):
    """MCYT-75: ``NNNN/NNNNvMM.bmp`` genuine, ``NNNN/NNNNfMM.bmp`` skilled forgery."""

    name = "mcyt"
    description = "MCYT-75: NNNN/NNNNvMM.bmp genuine, NNNN/NNNNfMM.bmp skilled forgery"
    _pattern = re.compile(r"(\d+)([vf])(\d+)", re.IGNORECASE)

    def classify(self, relpath: Path) -> tuple[str, int] | None:
        m = self._pattern.fullmatch(relpath.stem)
        if m is None:
            return None
        label = SKILLED if m.group(2).lower() == "f" else GENUINE
        return m.group(1), label


class CEDARReader(DatasetReader):
    """CEDAR: ``original_U_N.png`` genuine, ``forgeries_U_N.png`` skilled forgery.

    Works with the distributed ``full_org/`` + ``full_forg/`` folders as well
    as with all files in one folder. User ids are the numbers as written.
    """

    name = "cedar"
    description = (
        "CEDAR: original_U_N.png genuine, forgeries_U_N.png skilled forgery "
        "(full_org/ + full_forg/ or one folder)"
    )
    _pattern = re.compile(r"(original|forgeries)_(\d+)_(\d+)", re.IGNORECASE)

    def classify(self, relpath: Path) -> tuple[str, int] | None:
        m = self._pattern.fullmatch(relpath.stem)
        if m is None:
            return None
        label = SKILLED if m.group(1).lower() == "forgeries" else GENUINE
        return m.group(2), label


class BrazilianReader(DatasetReader):
    """Brazilian PUC-PR: ``aUUU_NN.*`` with NN 1-40 genuine, 41-50 simple, 51-60 skilled.

    Files numbered outside 1-60 are reported as unmatched rather than guessed.
    """

    name = "brazilian"
    description = (
        "Brazilian PUC-PR: aUUU_NN.* with NN 01-40 genuine, 41-50 simple, 51-60 skilled forgery"
    )
    _pattern = re.compile(r"a(\d+)_(\d+)", re.IGNORECASE)

    def classify(self, relpath: Path) -> tuple[str, int] | None:
        m = self._pattern.fullmatch(relpath.stem)
        if m is None:
            return None
        number = int(m.group(2))
        if 1 <= number <= 40:
            label = GENUINE
        elif 41 <= number <= 50:
            label = SIMPLE
        elif 51 <= number <= 60:
            label = SKILLED
        else:
            return None
        return m.group(1), label


class BHSig260Reader(DatasetReader):
    """BHSig260 (Bengali and Hindi): ``B-S-U-G-NN.tif`` genuine, ``B-S-U-F-NN.tif`` forged.

    Hindi files start with ``H-``. User numbers restart at 1 in each script,
    so user ids carry the script and are zero-padded: ``"B-001"``, ``"H-001"``.
    """

    name = "bhsig260"
    description = (
        "BHSig260 Bengali + Hindi: {B,H}-S-U-G-NN.tif genuine, {B,H}-S-U-F-NN.tif forgery; "
        "users B-001.., H-001.."
    )
    _pattern = re.compile(r"([BH])-S-(\d+)-([GF])-(\d+)", re.IGNORECASE)

    def classify(self, relpath: Path) -> tuple[str, int] | None:
        m = self._pattern.fullmatch(relpath.stem)
        if m is None:
            return None
        label = SKILLED if m.group(3).upper() == "F" else GENUINE
        return f"{m.group(1).upper()}-{int(m.group(2)):03d}", label


class SigComp2011Reader(DatasetReader):
    """ICDAR 2011 SigComp, offline Dutch set (the widely shared ``sign_data`` copy).

    Genuine signatures live in ``WWW/`` and skilled forgeries of writer WWW in
    ``WWW_forg/``. Two file-name orders occur in the public copy, both accepted:
    genuine ``WWW_NN.png`` or ``NN_WWW.png``; forgeries ``FFFFWWW_NN.png`` or
    ``NN_FFFFWWW.png`` (FFFF = forger, WWW = writer imitated). When the parent
    folder is named after a writer, it must agree with the file name (writer
    and genuine/forgery); disagreeing files are reported as unmatched rather
    than mislabelled.
    """

    name = "sigcomp2011"
    description = (
        "ICDAR 2011 SigComp Dutch offline: WWW/WWW_NN.png genuine, "
        "WWW_forg/FFFFWWW_NN.png skilled forgery (NN_WWW / NN_FFFFWWW orders too)"
    )
    _genuine = (re.compile(r"(?P<w>\d{3})_(?P<n>\d{2})"), re.compile(r"(?P<n>\d{2})_(?P<w>\d{3})"))
    _forgery = (
        re.compile(r"(?P<f>\d{4})(?P<w>\d{3})_(?P<n>\d{2})"),
        re.compile(r"(?P<n>\d{2})_(?P<f>\d{4})(?P<w>\d{3})"),
    )
    _folder = re.compile(r"(?P<w>\d{3})(?P<forg>_forg)?", re.IGNORECASE)

    def classify(self, relpath: Path) -> tuple[str, int] | None:
        stem = relpath.stem
        found: tuple[str, int] | None = None
        for pattern in self._genuine:
            m = pattern.fullmatch(stem)
            if m is not None:
                found = (m.group("w"), GENUINE)
                break
        else:
            for pattern in self._forgery:
                m = pattern.fullmatch(stem)
                if m is not None:
                    found = (m.group("w"), SKILLED)
                    break
        if found is None:
            return None
        folder = self._folder.fullmatch(relpath.parent.name)
        if folder is not None:
            folder_label = SKILLED if folder.group("forg") else GENUINE
            if (folder.group("w"), folder_label) != found:
                return None
        return found
