"""Settings of the enrollment application (home folder, limits, defaults).

Every setting has a default, can be overridden by an environment variable
(useful for the HTTP service, whose worker processes cannot receive Python
objects) and by explicit arguments, which win.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from enrollment.errors import EnrollmentError

__all__ = [
    "DEFAULT_MIN_REFERENCES",
    "ENV_HOME",
    "ENV_MODEL",
    "ENV_STORE",
    "ENV_STORE_SECRET",
    "ENV_THREADS",
    "Settings",
    "default_threads",
    "resolve_home",
]

#: Environment variable naming the folder that holds the user store.
ENV_HOME = "SIGVER_HOME"
#: Environment variable naming the model (checkpoint path or name) to use.
ENV_MODEL = "SIGVER_MODEL"
#: Environment variable naming the store: ``postgresql://...`` or a SQLite folder.
ENV_STORE = "SIGVER_STORE"
#: Environment variable holding the classifier-integrity secret (share it between hosts).
ENV_STORE_SECRET = "SIGVER_STORE_SECRET"
#: Environment variable: torch / BLAS threads per process (service workers).
ENV_THREADS = "SIGVER_THREADS"

#: Fewest distinct genuine references accepted for an enrollment. Four keeps
#: the per-user SVM away from the degenerate one-or-two-point regime while
#: staying practical at a counter; the SigNet literature uses 5-12.
DEFAULT_MIN_REFERENCES = 4


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding the user store.

    Parameters
    ----------
    home : path-like, optional
        Explicit folder (``--home``); otherwise ``$SIGVER_HOME``; otherwise ``~/.sigver``.

    Returns
    -------
    pathlib.Path
        Absolute path (not created here).
    """
    if home is None or str(home) == "":
        home = os.environ.get(ENV_HOME) or Path.home() / ".sigver"
    return Path(home).expanduser().resolve()


def default_threads(workers: int = 1) -> int:
    """Threads per worker so that ``workers x threads <= cores`` (at least 1).

    Cores are those this process may run on (``sched_getaffinity``), not the
    machine's: containers are often limited to fewer.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(workers)))


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EnrollmentError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise EnrollmentError(f"{name} must be positive, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Limits and defaults shared by the CLI, the Python API and the service.

    Attributes
    ----------
    min_references : int
        Fewest distinct references for an enrollment (``SIGVER_MIN_REFS``).
    max_file_bytes : int
        Largest accepted uploaded file, in bytes (``SIGVER_MAX_FILE_BYTES``, 10 MB).
    max_request_bytes : int
        Largest accepted request body, in bytes (``SIGVER_MAX_REQUEST_BYTES``, 64 MB).
    max_files : int
        Most files in one request (``SIGVER_MAX_FILES``).
    max_pixels : int
        Largest decoded image, in pixels, passed to ``read_image`` (``SIGVER_MAX_PIXELS``).
    max_user_negatives : int
        Cap on negatives taken from other enrolled users, which keeps enrollment time
        bounded as the store grows (``SIGVER_MAX_USER_NEGATIVES``).
    busy_timeout_s : float
        How long a store operation waits for a lock held by another process.
    max_decoded_bytes : int
        Memory budget of one decoded image, in bytes (``SIGVER_MAX_DECODED_BYTES``,
        256 MB): a 16-bit RGBA image costs 8 bytes a pixel, so the pixel limit
        alone does not bound memory.
    max_concurrent_decodes : int
        Images decoded at once per process (``SIGVER_MAX_CONCURRENT_DECODES``);
        with ``max_decoded_bytes`` it bounds the memory of concurrent uploads.
    max_image_requests : int
        Requests doing image work (enroll, verify, preprocess) served at once per
        service process (``SIGVER_MAX_IMAGE_REQUESTS``); the others wait without
        holding a worker thread, so authentication, ``/ready`` and the store
        endpoints stay responsive under a flood of uploads.
    threads : int or None
        Torch / BLAS threads of this process (``SIGVER_THREADS``); ``None``
        leaves the libraries' defaults.
    blas_threads : int or None
        BLAS threads around the per-user SVM products (default 1: for a few
        thousand support vectors, waking more threads costs more than it saves).
    """

    min_references: int = DEFAULT_MIN_REFERENCES
    max_file_bytes: int = 10 * 1024 * 1024
    max_request_bytes: int = 64 * 1024 * 1024
    max_files: int = 32
    max_pixels: int = 40_000_000
    max_user_negatives: int = 2000
    busy_timeout_s: float = 30.0
    max_decoded_bytes: int = 256 * 1024 * 1024
    max_concurrent_decodes: int = 2
    max_image_requests: int = 4
    threads: int | None = None
    blas_threads: int | None = 1

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then environment variables, then non-``None`` ``overrides``."""
        base = cls()
        values: dict[str, object] = {
            "min_references": _env_int("SIGVER_MIN_REFS", base.min_references),
            "max_file_bytes": _env_int("SIGVER_MAX_FILE_BYTES", base.max_file_bytes),
            "max_request_bytes": _env_int("SIGVER_MAX_REQUEST_BYTES", base.max_request_bytes),
            "max_files": _env_int("SIGVER_MAX_FILES", base.max_files),
            "max_pixels": _env_int("SIGVER_MAX_PIXELS", base.max_pixels),
            "max_user_negatives": _env_int("SIGVER_MAX_USER_NEGATIVES", base.max_user_negatives),
            "max_decoded_bytes": _env_int("SIGVER_MAX_DECODED_BYTES", base.max_decoded_bytes),
            "max_concurrent_decodes": _env_int(
                "SIGVER_MAX_CONCURRENT_DECODES", base.max_concurrent_decodes
            ),
            "max_image_requests": _env_int("SIGVER_MAX_IMAGE_REQUESTS", base.max_image_requests),
        }
        if os.environ.get(ENV_THREADS):
            values["threads"] = _env_int(ENV_THREADS, 1)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return dataclasses.replace(base, **values)  # type: ignore[arg-type]
