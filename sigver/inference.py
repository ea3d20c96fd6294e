"""Inference backends: the same frozen network run with torch or with ONNX Runtime.

:func:`open_extractor` is how the CLI, the :class:`~enrollment.Verifier` and the
service get a feature extractor::

    >>> from sigver.inference import open_extractor
    >>> ext = open_extractor()                      # shipped model, fastest verified backend
    >>> ext = open_extractor("runs/x/best.pt", backend="torch")

Backends
--------
``torch``
    :class:`sigver.features.Extractor`: eager PyTorch, any device.
``onnx``
    :class:`OnnxExtractor`: the network exported with :func:`export_onnx` and run
    by ONNX Runtime on the CPU. Importing it never imports torch, so a cold
    ``sigver verify`` skips torch's multi-second start-up.
``auto`` (default; ``$SIGVER_BACKEND`` overrides)
    ``onnx`` when onnxruntime is installed **and** the exported model has been
    verified for this checkpoint and measured faster than torch; otherwise ``torch``.

Verification, once per checkpoint
---------------------------------
The first time a checkpoint is opened with ``auto`` or ``onnx``, torch loads it
(sha256-checked as always), exports it to ONNX, runs both on a fixed probe batch
and compares the features (:data:`AGREEMENT_RTOL`, relative to the largest
feature magnitude), then times both backends over a few batch sizes. The ONNX
file and a JSON record of the comparison, the timings and the chosen batch sizes
are written atomically to the user's cache folder (:func:`cache_dir`:
``$SIGVER_CACHE_DIR``, else ``$XDG_CACHE_HOME/sigver``, else
``~/.cache/sigver``), never into the installation. Later opens hash the
checkpoint (and check its ``.sha256`` sidecar), hash the cached ONNX file against
the record, and load it without torch. A record made with another version of
onnxruntime or of this format is redone.

The exported file is self-describing for use from other languages
(:func:`export_onnx`, ``sigver export --format onnx``): its ``metadata_props``
carry the checkpoint's sha256, the model id, the preprocessing preset and the
full checkpoint metadata as JSON, and the input convention.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.util
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sigver import __version__
from sigver._meta import WeightsMeta, file_sha256, model_id_for, read_sidecar
from sigver.errors import ModelError
from sigver.features import (
    DEFAULT_BATCH_SIZE,
    BaseExtractor,
    default_model_path,
    missing_default_model_error,
    resolve_model_path,
)

if TYPE_CHECKING:
    from sigver.features import Extractor

logger = logging.getLogger(__name__)

__all__ = [
    "AGREEMENT_RTOL",
    "BACKENDS",
    "BACKEND_ENV",
    "CACHE_ENV",
    "OnnxExtractor",
    "cache_dir",
    "export_onnx",
    "onnx_metadata",
    "onnxruntime_available",
    "open_extractor",
    "prepare_onnx",
    "probe_images",
]

#: Values of ``--backend``.
BACKENDS = ("auto", "torch", "onnx")
#: Environment variable giving the default backend.
BACKEND_ENV = "SIGVER_BACKEND"
#: Environment variable overriding the cache folder.
CACHE_ENV = "SIGVER_CACHE_DIR"
#: Largest accepted ``max|f_onnx - f_torch| / max|f_torch|`` on the probe batch.
#: ONNX Runtime and torch reorder float32 sums differently; on the shipped model
#: the difference is ~1e-6, so 1e-4 passes rounding and fails any real mismatch.
AGREEMENT_RTOL = 1e-4
#: Metadata keys written into exported ONNX files.
ONNX_FORMAT = "sigver-onnx"
ONNX_FORMAT_VERSION = 1
#: Version of the cache records (bump to invalidate them).
RECORD_VERSION = 1
#: Batch sizes tried when choosing one by measurement.
BATCH_CANDIDATES = (1, 8, 16, 32, 64)
#: Images in the probe batch.
PROBE_SIZE = 64
INPUT_NAME = "images"
OUTPUT_NAME = "features"
INPUT_CONVENTION = (
    "float32 tensor (N, 1, H, W), H x W = input_size of sigver.preprocess: a uint8 image "
    "preprocessed with sigver.preprocessing (preset in sigver.preprocess: canvas_size, "
    "img_size), centre-cropped to input_size, divided by 255 (ink bright, background 0)"
)


def onnxruntime_available() -> bool:
    """Whether onnxruntime can be imported (checked without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def cache_dir() -> Path:
    """The user's cache folder for sigver (not created here)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sigver"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# -- probe images --------------------------------------------------------------------


def probe_images(img_size: Sequence[int], n: int = PROBE_SIZE, seed: int = 0) -> np.ndarray:
    """Deterministic signature-like uint8 images ``(n, 1, h, w)`` (bright strokes on 0).

    Used to compare backends and to time them; random strokes exercise every
    layer the way ink does, unlike constant or white-noise images.
    """
    import cv2

    h, w = int(img_size[0]), int(img_size[1])
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 1, h, w), np.uint8)
    for i in range(n):
        img = out[i, 0]
        pts = np.cumsum(rng.normal(0, 12, size=(int(rng.integers(8, 30)), 2)), axis=0)
        pts = pts - pts.mean(axis=0) + (w / 2, h / 2)
        pts = np.clip(pts, 2, (w - 3, h - 3)).astype(np.int32)
        cv2.polylines(img, [pts], False, int(rng.integers(120, 256)), int(rng.integers(1, 4)))
        out[i, 0] = cv2.GaussianBlur(img, (3, 3), 0.8)
    return out


# -- export --------------------------------------------------------------------------


def onnx_metadata(extractor: BaseExtractor) -> dict[str, str]:
    """``metadata_props`` written into an exported model (all values are strings)."""
    meta = extractor.meta
    meta_dict = meta.to_dict() if meta is not None else {}
    return {
        "sigver.format": ONNX_FORMAT,
        "sigver.format_version": str(ONNX_FORMAT_VERSION),
        "sigver.checkpoint_sha256": extractor.sha256,
        "sigver.model_id": extractor.model_id,
        "sigver.arch": extractor.arch,
        "sigver.feature_dim": str(extractor.feature_dim),
        "sigver.preprocess": json.dumps(extractor.preprocess_config.to_dict(), sort_keys=True),
        "sigver.meta": json.dumps(meta_dict, sort_keys=True, default=str),
        "sigver.input": INPUT_CONVENTION,
        "sigver.output": f"float32 (N, {extractor.feature_dim}) features",
        "sigver.version": __version__,
    }


def export_onnx(
    extractor: Extractor, out: str | os.PathLike[str], *, opset: int | None = None
) -> Path:
    """Export a torch extractor's network to ONNX, written atomically.

    Parameters
    ----------
    extractor : Extractor
        A torch extractor loaded from a checkpoint (its sha256 and preset go
        into the metadata).
    out : path-like
        Destination ``.onnx`` file (its folder is created).
    opset : int, optional
        ONNX opset (the exporter's default when omitted).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ModelError
        If the exporter (torch.onnx, needs ``onnx`` and ``onnxscript``) is missing
        or fails.
    """
    import torch

    try:
        import onnx
    except ImportError:
        raise ModelError(
            "ONNX export needs the onnx and onnxscript packages (sigver's own dependencies: "
            "reinstall sigver, or pip install onnx onnxscript)"
        ) from None
    from sigver._util import atomic_write

    if not extractor.sha256:
        raise ModelError("export a model loaded from a checkpoint (it has no sha256)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    h, w = extractor.preprocess_config.input_size
    model = extractor.model
    if next(model.parameters()).device.type != "cpu":
        import copy

        model = copy.deepcopy(model).to("cpu")
    model = model.eval()
    dummy = torch.zeros(2, 1, int(h), int(w))
    with tempfile.TemporaryDirectory(prefix="sigver-onnx-") as tmp:
        raw = Path(tmp) / "model.onnx"
        # The exporter's own progress lines go to stdout; they are not ours to print.
        exporter_log = logging.getLogger("torch.onnx")
        previous = exporter_log.level
        exporter_log.setLevel(logging.ERROR)
        try:
            import contextlib
            import io
            import warnings

            # The exporter's deprecation chatter is about torch internals, not the model.
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (dummy,),
                    str(raw),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                    dynamo=True,
                    external_data=False,
                    opset_version=opset,
                )
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            logger.debug("torch.onnx.export failed", exc_info=True)
            raise ModelError(f"ONNX export of {extractor.model_id} failed: {exc}") from exc
        finally:
            exporter_log.setLevel(previous)
        proto = onnx.load(str(raw))
    del proto.metadata_props[:]
    for key, value in onnx_metadata(extractor).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (
        f"sigver feature extractor {extractor.model_id} (checkpoint sha256 "
        f"{extractor.sha256}); input: {INPUT_CONVENTION}"
    )
    atomic_write(out, proto.SerializeToString())
    return out


# -- the ONNX Runtime extractor ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OnnxWeights:
    """Identity of the weights behind an ONNX session (what ``Extractor.weights`` gives).

    Attributes
    ----------
    meta : WeightsMeta
        Checkpoint metadata, read from the ONNX file.
    sha256 : str
        sha256 of the checkpoint the ONNX file was exported from.
    path : Path or None
        The checkpoint (background negatives are found beside it).
    onnx_path : Path
        The ONNX file.
    """

    meta: WeightsMeta
    sha256: str
    path: Path | None
    onnx_path: Path

    @property
    def model_id(self) -> str:
        """Same id as the torch extractor of the same checkpoint."""
        return model_id_for(self.meta, self.sha256)


class OnnxExtractor(BaseExtractor):
    """A feature extractor run by ONNX Runtime (CPU), without torch.

    Parameters
    ----------
    onnx_path : path-like
        A file written by :func:`export_onnx`.
    checkpoint_path : path-like, optional
        The checkpoint it was exported from (for background negatives).
    expected_sha256 : str, optional
        Refuse the file unless its recorded checkpoint sha256 is this.
    batch_size : int, optional
        Default images per run (measured by :func:`prepare_onnx`).
    threads : int, optional
        ONNX Runtime intra-op threads (default: its own choice, the physical cores).

    Raises
    ------
    ModelError
        If onnxruntime is missing or the file is not a sigver export.
    """

    backend = "onnx"

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        *,
        checkpoint_path: str | os.PathLike[str] | None = None,
        expected_sha256: str | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError(
                "the onnx backend needs onnxruntime, a dependency of sigver that is missing "
                "here: pip install onnxruntime (or choose the torch backend)"
            ) from None
        from sigver.preprocessing import PreprocessConfig

        path = Path(onnx_path)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # ONNX Runtime's workers spin-wait between runs by default, which on a shared
        # CPU steals the cycles other processes (and torch) need: at load average 6 on
        # 2 cores the shipped model ran at 80 img/s with spinning, 185 without (batch 1).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception:  # noqa: BLE001 - onnxruntime raises its own types
            logger.debug("onnxruntime could not load %s", path, exc_info=True)
            raise ModelError(f"{path} is not a loadable ONNX model") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get("sigver.format") != ONNX_FORMAT:
            raise ModelError(f"{path} is not a sigver ONNX export (no sigver.format metadata)")
        sha = props.get("sigver.checkpoint_sha256", "")
        if expected_sha256 is not None and sha != expected_sha256:
            raise ModelError(
                f"{path} was exported from checkpoint {sha[:12]}..., not {expected_sha256[:12]}..."
            )
        meta = WeightsMeta.from_dict(json.loads(props.get("sigver.meta") or "{}"))
        preset = json.loads(props.get("sigver.preprocess") or "{}")
        self.weights = OnnxWeights(
            meta=meta,
            sha256=sha,
            path=None if checkpoint_path is None else Path(checkpoint_path),
            onnx_path=path,
        )
        self._preprocess = (
            PreprocessConfig.from_dict(preset)
            if preset
            else PreprocessConfig(input_size=tuple(meta.input_size))
        )
        self._feature_dim = int(meta.feature_dim)
        self._input = self.session.get_inputs()[0].name
        if batch_size:
            self.default_batch_size = int(batch_size)

    @property
    def feature_dim(self) -> int:
        """Dimension of the features."""
        return self._feature_dim

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})[0]
        return np.asarray(out, dtype=np.float32)


# -- verification records ------------------------------------------------------------


def _versions(names: Sequence[str] = ("onnxruntime", "onnx", "onnxscript", "torch")) -> dict:
    """Installed versions ('' when absent); onnxruntime's without importlib.metadata,
    whose import alone is a noticeable share of a cold start."""
    out = {"sigver": __version__}
    for name in names:
        if name == "onnxruntime" and onnxruntime_available():
            import onnxruntime

            out[name] = str(onnxruntime.__version__)
            continue
        from importlib.metadata import PackageNotFoundError, version

        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = ""
    return out


def _record_path(sha256: str) -> Path:
    return cache_dir() / "onnx" / f"{sha256}.json"


def _watched(record: Mapping[str, Any]) -> tuple[str, ...]:
    """Packages whose upgrade invalidates a record: the runtime always; the exporter
    only for a failed export (upgrading or installing it may fix the export)."""
    return ("onnxruntime",) if record.get("verified") else ("onnxruntime", "onnx", "onnxscript")


def _read_record(sha256: str) -> Any:
    """The parsed cache record file of a checkpoint, unchecked (None if absent or unreadable)."""
    path = _record_path(sha256)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable ONNX cache record %s (%s)", path, exc)
        return None


def _measured_batch_size(sha256: str, backend: str) -> int | None:
    """The batch size measured for ``backend`` when this checkpoint was verified, if any.

    Only the measured figure is read: the record need not be current for ONNX
    (that is :func:`_load_record`'s check), since the torch path does not use it.
    """
    record = _read_record(sha256)
    try:
        size = int(record["batch_size"][backend]) if record["checkpoint_sha256"] == sha256 else 0
    except (ValueError, KeyError, TypeError):
        return None
    return size if size >= 1 else None


def _load_record(sha256: str, reference_arch: str) -> dict[str, Any] | None:
    """The cache record of a checkpoint, if it is complete, current and untampered."""
    path = _record_path(sha256)
    record = _read_record(sha256)
    if record is None:
        return None
    versions = _versions(_watched(record)) if isinstance(record, Mapping) else {}
    if (
        not isinstance(record, Mapping)
        or record.get("record_version") != RECORD_VERSION
        or record.get("checkpoint_sha256") != sha256
        or record.get("reference_arch") != reference_arch
        or any(record.get("versions", {}).get(k) != versions[k] for k in _watched(record))
    ):
        logger.info("ONNX cache record %s is stale; verifying again", path)
        return None
    if record.get("verified"):
        onnx_file = path.parent / str(record.get("onnx_file", ""))
        if not onnx_file.is_file() or file_sha256(onnx_file) != record.get("onnx_sha256"):
            logger.warning("cached ONNX model for %s is missing or altered; redoing", sha256[:12])
            return None
    return dict(record)


def _throughput(extractor: BaseExtractor, images: np.ndarray, batch_size: int) -> float:
    """Images per second at ``batch_size`` (best of two ~0.15 s rounds: the best
    round is the one least disturbed by other processes)."""
    extractor.extract(images[:batch_size], batch_size=batch_size)  # warm-up
    best = 0.0
    for _ in range(2):
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < 0.15:
            extractor.extract(images[:batch_size], batch_size=batch_size)
            done += batch_size
        best = max(best, done / (time.perf_counter() - start))
    return best


def _sweep(extractor: BaseExtractor, images: np.ndarray) -> dict[int, float]:
    return {b: _throughput(extractor, images, b) for b in BATCH_CANDIDATES if b <= len(images)}


def prepare_onnx(
    torch_extractor: Extractor, *, reference_arch: str = "signet", measure: bool = True
) -> dict[str, Any]:
    """Export, verify against torch, time both backends and record it in the cache.

    Parameters
    ----------
    torch_extractor : Extractor
        Loaded from the checkpoint (sha256-checked).
    reference_arch : str
        Recorded so that a reference checkpoint opened as another architecture
        is prepared again.
    measure : bool
        Time both backends (to choose the faster and the batch sizes); without
        it ONNX is preferred when it agrees, with the default batch size.

    Returns
    -------
    dict
        The record (also written to ``cache_dir()/onnx/<sha256>.json``).
    """
    from sigver._util import atomic_write, to_strict_json

    sha = torch_extractor.sha256
    folder = cache_dir() / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "record_version": RECORD_VERSION,
        "checkpoint_sha256": sha,
        "model_id": torch_extractor.model_id,
        "reference_arch": reference_arch,
        "versions": _versions(),
        "created": _now(),
        "verified": False,
    }
    start = time.perf_counter()
    tmp = folder / f".{sha}.{os.getpid()}.onnx"
    try:
        try:
            export_onnx(torch_extractor, tmp)
        except ModelError as exc:
            record["reason"] = str(exc)
            atomic_write(_record_path(sha), to_strict_json(record))
            return record
        onnx_sha = file_sha256(tmp)
        name = f"{sha}-{onnx_sha[:16]}.onnx"
        os.replace(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)
    onnx_ext = OnnxExtractor(folder / name, expected_sha256=sha)
    probe = probe_images(torch_extractor.preprocess_config.img_size)
    ref = torch_extractor.extract(probe, batch_size=16)
    got = onnx_ext.extract(probe, batch_size=16)
    max_abs = float(np.max(np.abs(got - ref)))
    scale = float(np.max(np.abs(ref))) or 1.0
    record.update(
        onnx_file=name,
        onnx_sha256=onnx_sha,
        agreement={
            "probe_images": len(probe),
            "max_abs_diff": max_abs,
            "max_rel_diff": max_abs / scale,
            "rtol": AGREEMENT_RTOL,
        },
        verified=bool(max_abs / scale <= AGREEMENT_RTOL),
    )
    if not record["verified"]:
        record["reason"] = (
            f"ONNX features differ from torch by {max_abs / scale:.2e} (relative) on the probe "
            f"batch, above {AGREEMENT_RTOL:g}"
        )
    batch = {"torch": DEFAULT_BATCH_SIZE, "onnx": DEFAULT_BATCH_SIZE}
    choice = "onnx" if record["verified"] else "torch"
    if measure and record["verified"]:
        timings = {"torch": _sweep(torch_extractor, probe), "onnx": _sweep(onnx_ext, probe)}
        record["throughput_img_s"] = {
            k: {str(b): round(v, 1) for b, v in t.items()} for k, t in timings.items()
        }
        batch = {k: max(t, key=t.get) for k, t in timings.items()}
        best = {k: timings[k][batch[k]] for k in timings}
        choice = "onnx" if best["onnx"] >= best["torch"] else "torch"
    record.update(batch_size=batch, auto_backend=choice, prepare_seconds=0.0)
    record["prepare_seconds"] = round(time.perf_counter() - start, 2)
    atomic_write(_record_path(sha), to_strict_json(record))
    logger.info(
        "ONNX export of %s %s (max relative difference %.1e); auto backend: %s",
        torch_extractor.model_id,
        "verified" if record["verified"] else "REJECTED",
        max_abs / scale,
        choice,
    )
    return record


def checkpoint_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a checkpoint, checked against its ``.sha256`` sidecar when there is one.

    Raises
    ------
    ModelError
        On a mismatch (corrupt or modified file).
    """
    digest = file_sha256(path)
    expected = read_sidecar(path)
    if expected is not None and expected != digest:
        raise ModelError(
            f"{path}: sha256 mismatch (file {digest[:12]}..., sidecar {expected[:12]}...); "
            "the checkpoint is corrupt or was modified"
        )
    return digest


def _torch(path: Path, device: str, reference_arch: str) -> Extractor:
    from sigver.features import Extractor

    return Extractor.from_checkpoint(path, device, reference_arch=reference_arch)


def open_extractor(
    model: str | os.PathLike[str] | None = None,
    *,
    backend: str | None = None,
    device: str = "cpu",
    reference_arch: str = "signet",
) -> BaseExtractor:
    """Load a checkpoint with the requested inference backend.

    Parameters
    ----------
    model : path-like or str, optional
        Checkpoint path or shipped model name (``$SIGVER_MODEL``, then the
        shipped model, when omitted).
    backend : {"auto", "torch", "onnx"}, optional
        Default ``$SIGVER_BACKEND``, else ``auto`` (see the module docstring).
    device : str
        torch device; anything but ``cpu`` means the torch backend.
    reference_arch : str
        Architecture of a reference SigNet tuple checkpoint.

    Returns
    -------
    BaseExtractor
        :class:`~sigver.features.Extractor` or :class:`OnnxExtractor`.

    Raises
    ------
    ModelError
        Missing or tampered checkpoint; ``onnx`` requested but onnxruntime is
        missing or its features disagree with torch.
    """
    choice = (backend or os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if choice not in BACKENDS:
        raise ModelError(f"unknown backend {choice!r}; choose one of {', '.join(BACKENDS)}")
    path = resolve_model_path(model)
    if not path.is_file():
        if model is None and path == default_model_path():
            raise missing_default_model_error(path)
        raise ModelError(f"checkpoint not found: {path}")
    if choice == "torch" or (choice == "auto" and str(device) != "cpu"):
        ext = _torch(path, device, reference_arch)
        if str(device) == "cpu":
            # The batch size measured on this machine when the model was first verified.
            measured = _measured_batch_size(ext.sha256, "torch")
            if measured is not None:
                ext.default_batch_size = measured
        return ext
    if choice == "onnx" and str(device) != "cpu":
        raise ModelError("the onnx backend runs on the CPU only; use --backend torch for a GPU")
    if not onnxruntime_available():
        if choice == "onnx":
            raise ModelError(
                "the onnx backend needs onnxruntime, a dependency of sigver that is missing "
                "here: pip install onnxruntime (or choose the torch backend)"
            )
        logger.debug("onnxruntime is not installed; using torch")
        return _torch(path, device, reference_arch)
    sha = checkpoint_sha256(path)
    torch_ext: Extractor | None = None
    if read_sidecar(path) is None:
        # No sidecar: only a reference tuple may load, exactly as the torch path decides
        # (a sigver checkpoint without its .sha256 is refused), cached ONNX or not.
        torch_ext = _torch(path, device, reference_arch)
    record = _load_record(sha, reference_arch)
    if record is None:
        torch_ext = torch_ext or _torch(path, device, reference_arch)
        logger.info(
            "first use of %s with ONNX Runtime: exporting and checking it against torch "
            "(once per model, cached in %s)",
            torch_ext.model_id,
            cache_dir(),
        )
        try:
            record = prepare_onnx(torch_ext, reference_arch=reference_arch)
        except OSError as exc:
            # An unwritable cache (a service account without a home, a read-only
            # file system) must not stop verification: torch still works.
            if choice == "onnx":
                raise ModelError(
                    f"cannot write the ONNX cache in {cache_dir()} ({exc.strerror or exc}); "
                    f"set {CACHE_ENV} to a writable folder"
                ) from None
            logger.warning(
                "cannot write the ONNX cache in %s (%s); using torch (set %s)",
                cache_dir(),
                exc.strerror or exc,
                CACHE_ENV,
            )
            return torch_ext
    if not record.get("verified"):
        reason = record.get("reason", "ONNX export not verified")
        if choice == "onnx":
            raise ModelError(f"cannot use the onnx backend for {path}: {reason}")
        logger.info("using torch for %s: %s", path, reason)
        return torch_ext or _torch(path, device, reference_arch)
    batch = record.get("batch_size", {})
    if choice == "auto" and record.get("auto_backend") == "torch":
        ext = torch_ext or _torch(path, device, reference_arch)
        ext.default_batch_size = int(batch.get("torch", DEFAULT_BATCH_SIZE))
        return ext
    return OnnxExtractor(
        _record_path(sha).parent / record["onnx_file"],
        checkpoint_path=path,
        expected_sha256=sha,
        batch_size=int(batch.get("onnx", DEFAULT_BATCH_SIZE)),
    )
