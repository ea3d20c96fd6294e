"""Small shared helpers: atomic file writes, strict-JSON conversion, machine description.

Internal to sigver and its scripts; not part of the public API.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from sigver.errors import DatasetError, ImageError

__all__ = [
    "atomic_open",
    "atomic_write",
    "command_line",
    "cpu_model",
    "decode_meta",
    "encode_meta",
    "format_machine_info",
    "json_safe",
    "machine_info",
    "read_file_limited",
    "progress_bar",
    "str_vector",
    "to_strict_json",
    "write_json",
    "write_png",
]


# -- bounded reads -----------------------------------------------------------------


def read_file_limited(
    path: str | os.PathLike[str], max_bytes: int, *, name: str | None = None
) -> bytes:
    """Read a regular file of at most ``max_bytes`` bytes.

    ``st_size`` is not trusted: ``/dev/zero`` reports 0 and never ends, a FIFO
    blocks ``open``. The file is opened non-blocking, checked with ``fstat``
    on the open descriptor (no race with a swapped path) and read at most
    ``max_bytes + 1`` bytes, so a file that grows is refused too.

    Raises
    ------
    ImageError
        Missing, unreadable, not a regular file, or too large.
    """
    shown = str(path) if name is None else name
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ImageError(shown, "file not found") from None
    except IsADirectoryError:
        raise ImageError(shown, "is a directory, not an image") from None
    except PermissionError:
        raise ImageError(shown, "permission denied") from None
    except OSError as exc:
        raise ImageError(shown, f"cannot open file ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(shown, "is a directory, not an image")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(shown, "not a regular file (device, FIFO or socket)")
        if info.st_size > max_bytes:
            raise ImageError(shown, f"file is {info.st_size} bytes, over the {max_bytes} limit")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise ImageError(shown, f"file is over the {max_bytes}-byte limit")
        return b"".join(chunks)
    except OSError as exc:
        raise ImageError(shown, f"cannot read file ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


# -- atomic writes -----------------------------------------------------------------


def _current_umask() -> int:
    # The only portable way to read the umask is to set it and restore it.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
    fsync: bool = True,
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` that replaces ``path`` on success.

    Readers never see a half-written file: the data goes to a temporary file in
    the destination folder (so the final ``os.replace`` is an atomic rename on
    the same file system) and the destination is only replaced when the
    ``with`` block exits normally. On any exception the temporary file is
    removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or PathLike
        Destination file. Its folder must exist.
    mode : {"wb", "w"}
        Binary or text mode.
    encoding, newline : str, optional
        Passed to :func:`open` in text mode (``encoding`` defaults to UTF-8).
    fsync : bool
        Flush the data to disk before the rename, so that a crash cannot leave
        an empty file under the final name. Off only for bulk output that is
        cheap to regenerate (fsync per file dominates writing many small files).

    Yields
    ------
    file object
        The open temporary file.

    Raises
    ------
    ValueError
        If ``mode`` is not ``"w"`` or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', got {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    dest = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        # mkstemp creates the file 0600; give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    encoding: str = "utf-8",
    fsync: bool = True,
) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`).

    Parameters
    ----------
    path : str or PathLike
        Destination file. Its folder must exist.
    data : bytes or str
        Content; text is encoded with ``encoding`` and written without newline
        translation.
    encoding : str
        Encoding of text data.
    fsync : bool
        See :func:`atomic_open`.

    Returns
    -------
    Path
        The destination path.
    """
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(payload)
    return Path(path)


def write_png(
    path: str | os.PathLike[str],
    image: np.ndarray,
    *,
    compression: int | None = None,
    fsync: bool = False,
) -> Path:
    """Encode ``image`` as PNG and write it atomically.

    Parameters
    ----------
    path : str or PathLike
        Destination ``.png`` file. Its folder must exist.
    image : ndarray
        uint8 grayscale or BGR image.
    compression : int, optional
        PNG compression level 0-9 (OpenCV's default when omitted).
    fsync : bool
        See :func:`atomic_open`; off by default because PNG outputs (corpora,
        demo images) are many small, regenerable files.

    Returns
    -------
    Path
        The destination path.

    Raises
    ------
    ImageError
        If OpenCV cannot encode ``image``.
    """
    import cv2

    dest = Path(path)
    params = [] if compression is None else [cv2.IMWRITE_PNG_COMPRESSION, compression]
    ok, buf = cv2.imencode(".png", image, params)
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise ImageError(dest.name, "could not encode as PNG")
    return atomic_write(dest, buf.tobytes(), fsync=fsync)


# -- JSON ---------------------------------------------------------------------------


def json_safe(obj: Any) -> Any:
    """Copy of ``obj`` that :func:`json.dumps` writes as strict JSON.

    Non-finite floats (NaN, +-inf: an undefined metric, say) become ``None``
    (``null``) instead of the invalid tokens ``NaN``/``Infinity``; numpy scalars
    become Python numbers; tuples become lists. Dicts and lists are copied
    recursively; anything else is returned as is.

    Parameters
    ----------
    obj : Any
        JSON-like data (dicts, lists, tuples, numbers, strings, None).

    Returns
    -------
    Any
        The converted data.
    """
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


# -- npz archives (signature caches, feature sets) ------------------------------------


def encode_meta(meta: dict[str, Any]) -> np.ndarray:
    """``meta`` as the one-element unicode array stored in sigver ``.npz`` files.

    Parameters
    ----------
    meta : dict
        JSON-serialisable metadata.

    Returns
    -------
    ndarray
        Shape ``(1,)`` unicode array holding the JSON text (keys sorted).

    Raises
    ------
    DatasetError
        If ``meta`` is not JSON-serialisable.
    """
    try:
        text = json.dumps(meta, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"meta is not JSON-serialisable: {exc}") from exc
    return np.array([text])


def decode_meta(raw: np.ndarray | None, *, kind: str, max_version: int) -> dict[str, Any]:
    """Inverse of :func:`encode_meta`, refusing formats newer than this sigver.

    Parameters
    ----------
    raw : ndarray or None
        The stored ``meta`` array (None when it could not be read without pickle).
    kind : str
        What the file is (``"cache"``, ``"feature"``), for the messages.
    max_version : int
        Newest ``format_version`` this code reads; a missing version counts as it.

    Returns
    -------
    dict
        The metadata.

    Raises
    ------
    DatasetError
        If ``raw`` is not one JSON object string or its version is too new.
    """
    if raw is None or raw.size != 1:
        raise DatasetError("'meta' must be a one-element string array holding JSON")
    try:
        meta = json.loads(str(raw.reshape(-1)[0]))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"'meta' is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise DatasetError("'meta' JSON must be an object")
    version = meta.get("format_version", max_version)
    if not isinstance(version, int) or version > max_version:
        raise DatasetError(
            f"{kind} format version {version!r} is newer than this sigver understands "
            f"({max_version}); upgrade sigver"
        )
    return meta


def str_vector(values: Any, name: str) -> np.ndarray:
    """Validate a 1-D array of strings and return it as a unicode (not object) array.

    Parameters
    ----------
    values : array-like
        Unicode array, or object array of ``str`` (as read from reference files).
    name : str
        Array name for the messages.

    Returns
    -------
    ndarray
        1-D unicode array (``<U1`` when empty).

    Raises
    ------
    DatasetError
        If ``values`` is not 1-D or holds anything but strings.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DatasetError(f"{name!r} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "U":
        return arr
    if arr.size == 0:
        return np.zeros(0, dtype="<U1")
    if arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr.tolist()):
        return np.array(arr.tolist(), dtype=str)
    raise DatasetError(f"{name!r} must hold strings, got {arr.dtype}")


def to_strict_json(data: Any, *, indent: int | None = 2) -> str:
    """``json.dumps`` of :func:`json_safe` ``(data)``: never writes NaN/Infinity tokens.

    Parameters
    ----------
    data : Any
        JSON-like data.
    indent : int, optional
        As for :func:`json.dumps`.

    Returns
    -------
    str
        Strict JSON text (no trailing newline).
    """
    return json.dumps(json_safe(data), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2) -> Path:
    """Write ``data`` as strict JSON (see :func:`to_strict_json`) atomically, newline-terminated.

    Parameters
    ----------
    path : str or PathLike
        Destination file. Its folder must exist.
    data : Any
        JSON-like data; non-finite floats are written as ``null``.
    indent : int, optional
        As for :func:`json.dumps`.

    Returns
    -------
    Path
        The destination path.
    """
    return atomic_write(path, to_strict_json(data, indent=indent) + "\n")


# -- machine description for benchmarks -------------------------------------------


def command_line() -> str:
    """The command that started this process (interpreter included), shell-quoted."""
    return shlex.join([sys.executable, *sys.argv])


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo``, else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(*, include_torch: bool = False) -> dict[str, Any]:
    """Describe the machine and software a benchmark ran on.

    Parameters
    ----------
    include_torch : bool
        Also report the torch version and its intra-op thread count. Off by
        default because importing torch takes seconds.

    Returns
    -------
    dict
        ``platform``, ``python``, ``cpu``, ``cpu_count``, ``load_average``
        (1/5/15 min, None where unavailable), ``numpy``, ``opencv`` (None when
        cv2 is missing), and with ``include_torch`` ``torch`` and
        ``torch_threads``. JSON-serialisable.
    """
    try:
        load: list[float] | None = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # not available on every platform
        load = None
    try:
        import cv2

        opencv: str | None = cv2.__version__
    except ImportError:
        opencv = None
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "numpy": np.__version__,
        "opencv": opencv,
    }
    if include_torch:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def format_machine_info(info: dict[str, Any] | None = None) -> str:
    """Human-readable lines for :func:`machine_info` (computed when not given).

    Parameters
    ----------
    info : dict, optional
        A :func:`machine_info` result.

    Returns
    -------
    str
        Three lines (no trailing newline): platform, CPU and load, versions.
    """
    m = machine_info() if info is None else info
    load = m.get("load_average")
    load_text = " ".join(f"{v:.2f}" for v in load) if load else "n/a"
    versions = [f"python {m['python']}", f"numpy {m['numpy']}"]
    if m.get("opencv"):
        versions.append(f"opencv {m['opencv']}")
    if "torch" in m:
        versions.append(f"torch {m['torch']} ({m['torch_threads']} threads)")
    return "\n".join(
        [
            f"platform: {m['platform']}",
            f"cpu: {m['cpu']} ({m['cpu_count']} logical cores), load average {load_text}",
            ", ".join(versions),
        ]
    )


# -- progress ------------------------------------------------------------------------

#: Seconds between progress log lines when stderr is not a terminal
#: (``$SIGVER_PROGRESS_INTERVAL`` overrides).
PROGRESS_LOG_INTERVAL_S = 30.0


class LoggedProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` API, reported as log lines.

    A job whose stderr goes to a file or a CI log would otherwise print nothing
    for minutes (tqdm draws nothing there); this logs ``desc: n/total unit (x%,
    rate, ETA)`` at most every ``interval_s`` seconds, and once at the end when
    the job took longer than that.
    """

    def __init__(
        self, total: int | None, desc: str, unit: str, interval_s: float, logger_name: str
    ) -> None:
        import logging
        import time

        self._clock = time.monotonic
        self._log = logging.getLogger(logger_name)
        self.total, self.desc, self.unit, self.interval_s = total, desc, unit, interval_s
        self.n = 0
        self._start = self._last = self._clock()
        self._postfix = ""

    def __enter__(self) -> LoggedProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> str:
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = self.n / elapsed
        done = f"{self.n}" if not self.total else f"{self.n}/{self.total}"
        parts = [f"{self.desc}: {done} {self.unit}"]
        if self.total:
            parts.append(f"{100.0 * self.n / self.total:.0f}%")
        parts.append(f"{rate:.1f} {self.unit}/s")
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"ETA {(self.total - self.n) / rate:.0f} s")
        return ", ".join(parts) + (f" ({self._postfix})" if self._postfix else "")

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items; log when ``interval_s`` has passed since the last line."""
        self.n += int(n)
        now = self._clock()
        if now - self._last >= self.interval_s:
            self._last = now
            self._log.info("%s", self._line())

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Remember figures to append to the next line (tqdm-compatible signature)."""
        values = dict(args[0]) if args and isinstance(args[0], dict) else {}
        values.update(kwargs)
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_description(self, desc: str) -> None:
        """Change the label."""
        self.desc = desc

    def refresh(self) -> None:
        """tqdm compatibility (nothing to redraw)."""

    def close(self) -> None:
        """Log a final line when the job was long enough to have logged before."""
        if self._clock() - self._start >= self.interval_s:
            self._log.info("%s (done)", self._line())
        self.interval_s = float("inf")


def progress_bar(
    *,
    total: int | None,
    desc: str,
    unit: str = "it",
    enabled: bool = True,
    interval_s: float | None = None,
    logger_name: str = "sigver.progress",
    **tqdm_kwargs: Any,
) -> Any:
    """A progress reporter: a tqdm bar on a terminal, periodic log lines otherwise.

    Parameters
    ----------
    total : int or None
        Number of items expected.
    desc, unit : str
        Label and unit, as for tqdm.
    enabled : bool
        ``False`` gives a silent reporter (same API).
    interval_s : float, optional
        Seconds between log lines when stderr is not a terminal; default
        ``$SIGVER_PROGRESS_INTERVAL`` or :data:`PROGRESS_LOG_INTERVAL_S`.
    logger_name : str
        Logger of the log lines (a ``sigver`` child, so ``-q`` silences them).
    **tqdm_kwargs
        Passed to tqdm (``leave``, ``position``...).

    Returns
    -------
    tqdm.tqdm or LoggedProgress
        Both have ``update``, ``set_postfix``, ``close`` and are context managers.
    """
    if enabled and sys.stderr is not None and sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, **tqdm_kwargs)
    if not enabled:
        # Never logs (infinite interval); spares a short job tqdm's import (~70 ms).
        return LoggedProgress(total, desc, unit, float("inf"), logger_name)
    if interval_s is None:
        try:
            raw = os.environ.get("SIGVER_PROGRESS_INTERVAL")
            interval_s = float(raw) if raw else PROGRESS_LOG_INTERVAL_S
        except ValueError:
            interval_s = PROGRESS_LOG_INTERVAL_S
    return LoggedProgress(total, desc, unit, interval_s, logger_name)
