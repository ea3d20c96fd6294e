"""The single signature preprocessing definition used for training, enrollment and verification.

The pipeline reproduces the one the published SigNet weights were trained with
(Hafemann et al., reference implementation ``luizgh/sigver``,
``sigver/preprocessing/normalize.py::preprocess_signature``), re-implemented
with OpenCV and NumPy only:

1. :func:`read_image` decodes any common format to 8-bit grayscale (dark ink on
   light paper), refusing corrupt files, non-images and decompression bombs.
2. Otsu's threshold ``t`` is computed on the raw image (scikit-image
   ``threshold_otsu`` semantics: pixels ``> t`` are background).
3. A Gaussian blur (sigma 2, radius 8, edge replication) of the image is used
   only to locate the ink: ``ink = blurred <= t``. The tight box around the ink
   (``img[rmin:rmax, cmin:cmax]``: the last row/column is excluded, as in the
   reference) is pasted on a white canvas of the dataset's ``canvas_size`` so
   that the ink's centre of mass lands at the canvas centre (relaxed to stay
   inside the canvas).
4. Pixels ``> t`` become background, the image is inverted (ink high,
   background 0), resized keeping the aspect ratio so that it covers
   ``img_size`` = (170, 242) and the overflow is centre-cropped.

The network sees a 150x220 crop (:func:`crop_center` at inference,
:func:`random_crop` when training) scaled to [0, 1] by :func:`to_network_input`.

Deviations from the reference (all deliberate, none affect signatures that fit
their canvas):

- A signature larger than the canvas is **scaled down** to fit (area
  interpolation) instead of being cropped, so no ink is ever lost.
- The reference's anti-aliased ``skimage.transform.resize`` is reproduced by
  its own recipe (Gaussian prefilter with sigma ``(factor - 1) / 2`` truncated
  at 4 sigma, then pixel-centre-aligned bilinear sampling, then truncation to
  ``uint8``) computed in float32 instead of float64; outputs differ by at most
  one grey level (measured: on <= 1 pixel per real sigcomp2011 image, <= 0.3 %
  of pixels on synthetic drawings).
- Ink localisation compares the (float64) blur with ``t + 1e-9`` so that a
  flat region at exactly the threshold grey level counts as ink; the
  reference decides such exact ties by floating-point rounding noise.
- On binarised images (the ink is a single grey level) the reference's
  ``blur <= t`` test keeps only the inside of strokes thicker than ~17 px, and
  usually nothing (it then fails); there the ink is located with the blur
  compared to the midpoint between the paper and ink levels.
- Colour images are converted with OpenCV's BT.601 luma weights, JPEGs are
  decoded straight to grayscale with their EXIF orientation applied, and
  images with no usable ink are rejected with :class:`~sigver.errors.ImageError`
  instead of producing an empty sample.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from sigver.errors import ImageError, SigverError

logger = logging.getLogger(__name__)

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray

#: Size (height, width) of a preprocessed signature, as stored in caches.
IMG_SIZE: tuple[int, int] = (170, 242)
#: Size (height, width) of the network input (centre or random crop of ``IMG_SIZE``).
INPUT_SIZE: tuple[int, int] = (150, 220)

#: Canvas (height, width) per dataset. The published values (GPDS, MCYT, CEDAR,
#: Brazilian, BHSig260) are each dataset's largest signature; ours:
#:
#: - ``sigcomp2011``: its largest ink boxes are 721x1230 and 418x1267 pixels
#:   (measured with this pipeline over all 1,649 images; median 251x634), so
#:   the GPDS canvas fits every signature with >= 93 px to spare, has the
#:   242/170 aspect ratio (nothing is lost by the final crop) and shows the
#:   signatures to the published GPDS weights at the scale they were trained on.
#: - ``gpds-synthetic``: synthetic GPDS-like scans are a few hundred pixels high
#:   and can be wide (long names), so a canvas ~15 % larger than GPDS with the
#:   same aspect ratio.
#: - ``default`` (unknown data, e.g. the generic folder reader): the GPDS canvas,
#:   the scale the published weights expect; larger signatures are scaled down.
CANVAS_SIZES: dict[str, tuple[int, int]] = {
    "gpds": (952, 1360),
    "gpds-synthetic": (1100, 1570),
    "mcyt": (600, 850),
    "cedar": (730, 1042),
    "brazilian": (700, 1000),
    "bhsig260": (763, 1083),
    "sigcomp2011": (952, 1360),
    "default": (952, 1360),
}

#: Largest accepted image, in pixels (decompression-bomb guard).
DEFAULT_MAX_PIXELS = 50_000_000
#: Largest accepted file / buffer, in bytes.
DEFAULT_MAX_BYTES = 128 * 1024 * 1024
#: Pixels converted to gray at once (bounds the float32 temporaries).
_CONVERT_STRIP_PIXELS = 1 << 20
#: Minimum difference, in grey levels, between the mean paper and mean ink
#: levels found by Otsu. Real scans measure > 100; a blank page with scanner
#: or JPEG noise measures < 10.
MIN_INK_CONTRAST = 24.0
#: Largest share of the image that may read as ink. Above it the "ink" is the
#: paper of an inverted scan (light on dark), and the ink box would be the whole
#: page. Measured: at most 0.29 on the SigComp2011 scans, 0.27 on 1,200 synthetic
#: v2 forms.
MAX_INK_FRACTION = 0.5
#: Share of an edge of the image above which that edge is "dark". A scanner's
#: black border darkens two edges or more; an image is refused when it has two
#: dark edges. One is allowed: a signature cropped to its ink box can have an
#: underline along a whole edge. Pre-printed boxes and ruled lines of the synthetic
#: v2 forms reach 0.72 of an edge, SigComp2011's scans 0.03.
MAX_EDGE_INK_FRACTION = 0.9

# Ink localisation blur: sigma 2 truncated at 4 sigma (scikit-image/SciPy default).
_INK_SIGMA = 2.0
# Tolerance for comparing the float32 blur with the integer threshold (see module doc).
_INK_EPS = 1e-9


class PreprocessConfigError(SigverError, ValueError):
    """A preprocessing configuration (preset name or stored dict) is invalid."""


def _as_size(value: Any, what: str) -> tuple[int, int]:
    """Validate a (height, width) pair of positive ints."""
    try:
        h, w = (int(v) for v in value)
        ok = all(float(v) == int(v) for v in value)
    except (TypeError, ValueError):
        raise PreprocessConfigError(
            f"{what} must be a (height, width) pair, got {value!r}"
        ) from None
    if not ok or h <= 0 or w <= 0:
        raise PreprocessConfigError(f"{what} must be two positive integers, got {value!r}")
    return (h, w)


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything needed to reproduce the preprocessing of a model's training data.

    Stored in model checkpoints (:meth:`to_dict` / :meth:`from_dict`) so that
    enrollment and verification preprocess exactly like training did.

    Parameters
    ----------
    canvas_size : tuple of int
        (height, width) of the canvas the signature is centred on.
    img_size : tuple of int
        (height, width) of the stored preprocessed image.
    input_size : tuple of int
        (height, width) of the network input cropped from it.
    """

    canvas_size: tuple[int, int] = field(default_factory=lambda: CANVAS_SIZES["default"])
    img_size: tuple[int, int] = IMG_SIZE
    input_size: tuple[int, int] = INPUT_SIZE

    def __post_init__(self) -> None:
        # Normalise lists (e.g. from JSON) to tuples and validate once, here.
        canvas = _as_size(self.canvas_size, "canvas_size")
        img = _as_size(self.img_size, "img_size")
        inp = _as_size(self.input_size, "input_size")
        if inp[0] > img[0] or inp[1] > img[1]:
            raise PreprocessConfigError(f"input_size {inp} is larger than img_size {img}")
        object.__setattr__(self, "canvas_size", canvas)
        object.__setattr__(self, "img_size", img)
        object.__setattr__(self, "input_size", inp)

    @classmethod
    def for_dataset(cls, name: str) -> PreprocessConfig:
        """Configuration for a dataset name from :data:`CANVAS_SIZES`.

        Raises
        ------
        PreprocessConfigError
            If the name is unknown (use ``"default"`` for other data).
        """
        key = str(name).lower()
        if key not in CANVAS_SIZES:
            known = ", ".join(sorted(CANVAS_SIZES))
            raise PreprocessConfigError(f"no preprocessing preset {name!r} (known: {known})")
        return cls(canvas_size=CANVAS_SIZES[key])

    @classmethod
    def preset(cls, name: str) -> PreprocessConfig:
        """Alias of :meth:`for_dataset`."""
        return cls.for_dataset(name)

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-friendly representation (lists of ints)."""
        return {
            "canvas_size": list(self.canvas_size),
            "img_size": list(self.img_size),
            "input_size": list(self.input_size),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; ``img_size``/``input_size`` default when absent.

        Raises
        ------
        PreprocessConfigError
            On a missing ``canvas_size``, unknown keys or malformed sizes.
        """
        if not isinstance(data, Mapping):
            raise PreprocessConfigError(f"preprocessing config must be a mapping, got {data!r}")
        unknown = set(data) - {"canvas_size", "img_size", "input_size"}
        if unknown:
            raise PreprocessConfigError(f"unknown preprocessing config keys: {sorted(unknown)}")
        if "canvas_size" not in data:
            raise PreprocessConfigError("preprocessing config lacks canvas_size")
        return cls(
            canvas_size=data["canvas_size"],
            img_size=data.get("img_size", IMG_SIZE),
            input_size=data.get("input_size", INPUT_SIZE),
        )


# --------------------------------------------------------------------------- reading


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(source, np.ndarray):
        return "<array>"
    return f"<{type(source).__name__}>"


def _png_dims(data: memoryview) -> tuple[int, int]:
    if len(data) < 33 or bytes(data[12:16]) != b"IHDR":
        raise ValueError("truncated PNG header")
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def _jpeg_dims(data: memoryview) -> tuple[int, int]:
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise ValueError("corrupt JPEG marker stream")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if pos + 9 > n:
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            if height == 0:
                raise ValueError("JPEG with height defined by a DNL marker is not supported")
            return height, width
        if marker in (0xD9, 0xDA) or length < 2:
            break
        pos += 2 + length
    raise ValueError("no JPEG frame header found (truncated or corrupt file)")


def _bmp_dims(data: memoryview) -> tuple[int, int]:
    if len(data) < 26:
        raise ValueError("truncated BMP header")
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:
        width, height = struct.unpack("<hh", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return abs(height), abs(width)


def _tiff_dims(data: memoryview) -> tuple[int, int]:
    end = "<" if bytes(data[:2]) == b"II" else ">"
    if len(data) < 8:
        raise ValueError("truncated TIFF header")
    (magic,) = struct.unpack(end + "H", data[2:4])
    if magic != 42:
        raise ValueError("BigTIFF and other TIFF variants are not supported")
    (ifd,) = struct.unpack(end + "I", data[4:8])
    if ifd + 2 > len(data):
        raise ValueError("TIFF directory lies beyond the end of the file")
    (count,) = struct.unpack(end + "H", data[ifd : ifd + 2])
    dims: dict[int, int] = {}
    for i in range(count):
        off = ifd + 2 + 12 * i
        if off + 12 > len(data):
            break
        tag, typ = struct.unpack(end + "HH", data[off : off + 4])
        if tag in (256, 257):
            fmt = "H" if typ == 3 else "I"
            (dims[tag],) = struct.unpack(end + fmt, data[off + 8 : off + 8 + struct.calcsize(fmt)])
    if 256 not in dims or 257 not in dims:
        raise ValueError("TIFF directory lacks the image width/length")
    return dims[257], dims[256]


def _webp_dims(data: memoryview) -> tuple[int, int]:
    if len(data) < 30:
        raise ValueError("truncated WebP header")
    kind = bytes(data[12:16])
    if kind == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif kind == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif kind == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        width, height = width & 0x3FFF, height & 0x3FFF
    else:
        raise ValueError("unknown WebP chunk")
    return height, width


_PNM_HEADER = re.compile(rb"P[1-6](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)")


def _pnm_dims(data: memoryview) -> tuple[int, int]:
    m = _PNM_HEADER.match(bytes(data[:1024]))
    if m is None:
        raise ValueError("corrupt PNM header")
    return int(m.group(2)), int(m.group(1))


def _sniff(data: memoryview) -> tuple[str, Any]:
    """Identify the format from its magic bytes; return (name, header parser)."""
    head = bytes(data[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", _png_dims
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG", _jpeg_dims
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF", _tiff_dims
    if head.startswith(b"BM"):
        return "BMP", _bmp_dims
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP", _webp_dims
    if re.match(rb"P[1-6]\s", head):
        return "PNM", _pnm_dims
    return "", None


def _strip_png_iccp(data: bytes | memoryview) -> bytes | memoryview:
    """Drop a PNG's iCCP chunk (libpng prints a warning for many scanners' profiles).

    The profile is irrelevant here (OpenCV ignores it) and the chunk must come
    before the image data, so only the chunks ahead of IDAT are walked.
    """
    view = memoryview(data)
    pos, n = 8, len(view)
    while pos + 8 <= n:
        (length,) = struct.unpack(">I", view[pos : pos + 4])
        ctype = bytes(view[pos + 4 : pos + 8])
        end = pos + 12 + length
        if ctype == b"iCCP":
            return bytes(view[:pos]) + bytes(view[end:])
        if ctype in (b"IDAT", b"IEND") or end > n:
            break
        pos = end
    return data


def _to_gray_u8(img: np.ndarray, name: str) -> np.ndarray:
    """Convert a decoded or user-supplied array to 2-D uint8 grayscale.

    Multi-channel arrays are BGR(A), OpenCV's convention. Alpha is composited
    over white (a transparent background is paper). 16-bit samples are scaled
    by 255/65535 with rounding; float samples are taken to lie in [0, 1].
    """
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (2, 3, 4)):
        raise ImageError(name, f"unsupported image array shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageError(name, f"image is empty (shape {img.shape})")
    if img.dtype == np.uint8 and img.ndim == 2:
        return img
    if img.dtype == np.uint8:
        scale = 255.0
    elif img.dtype == np.uint16:
        scale = 65535.0
    elif img.dtype == np.bool_:
        scale = 1.0
    elif img.dtype.kind == "f":
        if not np.all(np.isfinite(img)):
            raise ImageError(name, "image contains NaN or infinite values")
        scale = 1.0
    else:
        raise ImageError(name, f"unsupported sample type {img.dtype}")
    # Convert in strips: a float32 copy of a whole 16-bit RGBA scan would cost
    # 16 bytes a pixel on top of the decoded image.
    out = np.empty(img.shape[:2], dtype=np.uint8)
    step = max(1, _CONVERT_STRIP_PIXELS // img.shape[1])
    for r0 in range(0, img.shape[0], step):
        out[r0 : r0 + step] = _strip_to_gray_u8(img[r0 : r0 + step], scale)
    return out


def _strip_to_gray_u8(img: np.ndarray, scale: float) -> np.ndarray:
    x = img.astype(np.float32) * np.float32(1.0 / scale)
    if x.ndim == 3:
        channels = x.shape[2]
        if channels == 2:
            gray, alpha = x[:, :, 0], x[:, :, 1]
        else:
            code = cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY
            gray = cv2.cvtColor(np.ascontiguousarray(x[:, :, :3]), code)
            alpha = x[:, :, 3] if channels == 4 else None
        if alpha is not None:
            alpha = np.clip(alpha, 0.0, 1.0)
            gray = gray * alpha + (1.0 - alpha)
        x = gray
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _decoded_bytes_per_pixel(fmt: str, view: Any) -> int:
    """Upper bound of the decoder's bytes per pixel, from the header where it says.

    PNG's IHDR gives bit depth and colour type exactly; for the other formats
    the worst case the decoder can return is assumed.
    """
    if fmt == "PNG" and len(view) >= 26:
        depth, colour = int(view[24]), int(view[25])
        channels = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}.get(colour, 4)
        return channels * (2 if depth > 8 else 1)
    return {"JPEG": 3, "BMP": 4, "WebP": 4, "PNM": 6}.get(fmt, 8)


def read_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_decoded_bytes: int | None = None,
) -> np.ndarray:
    """Read an image as 2-D uint8 grayscale (dark ink on light paper).

    Parameters
    ----------
    source : str, os.PathLike, bytes or numpy.ndarray
        A file path (non-ASCII names are fine), the encoded file contents, or
        an already decoded array (2-D gray, or H x W x C BGR/BGRA; uint8,
        uint16, bool or float in [0, 1]).
    max_pixels : int
        Images with more pixels are refused. For files the check reads the
        format's header *before* decoding, so a decompression bomb never
        allocates its pixel buffer.
    max_bytes : int
        Files or buffers larger than this are refused before being read.
    max_decoded_bytes : int, optional
        Memory budget of the decoded image: refused *before decoding* when
        height x width x (bytes per pixel the header implies) exceeds it. A
        16-bit RGBA PNG costs 8 bytes a pixel, so ``max_pixels`` alone does
        not bound memory.

    Returns
    -------
    numpy.ndarray
        2-D ``uint8`` array.

    Raises
    ------
    ImageError
        Missing/unreadable file, empty or oversized data, unrecognised format,
        corrupt or truncated file, absurd dimensions, unsupported sample type.

    Notes
    -----
    Supported formats: PNG (gray, palette, RGB(A), 1-16 bit), JPEG, TIFF,
    BMP, WebP and PNM. Alpha is composited over white, 16-bit samples are
    rescaled (not truncated), colour uses BT.601 luma, and JPEG EXIF
    orientation is applied.
    """
    name = _source_name(source)
    if isinstance(source, np.ndarray):
        if source.size == 0:
            raise ImageError(name, f"image is empty (shape {source.shape})")
        if source.ndim >= 2 and source.shape[0] * source.shape[1] > max_pixels:
            raise ImageError(
                name,
                f"image has {source.shape[0]}x{source.shape[1]} pixels, "
                f"more than the limit of {max_pixels}",
            )
        if max_decoded_bytes is not None and source.nbytes > max_decoded_bytes:
            raise ImageError(
                name,
                f"image array is {source.nbytes} bytes, more than the limit of {max_decoded_bytes}",
            )
        return _to_gray_u8(source, name)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise ImageError(name, "not a regular file")
            if size > max_bytes:
                raise ImageError(name, f"file is {size} bytes, more than the limit of {max_bytes}")
            # np.fromfile + imdecode rather than cv2.imread: works with non-ASCII paths
            # on every platform and lets us inspect the header before decoding.
            data: bytes | memoryview | np.ndarray = np.fromfile(path, dtype=np.uint8)
        except FileNotFoundError:
            raise ImageError(name, "file not found") from None
        except PermissionError:
            raise ImageError(name, "permission denied") from None
        except OSError as exc:
            raise ImageError(name, f"cannot read file ({exc.strerror or exc})") from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = source
        if len(memoryview(data).cast("B")) > max_bytes:
            raise ImageError(name, f"data is larger than the limit of {max_bytes} bytes")
    else:
        raise ImageError(name, f"cannot read an image from a {type(source).__name__}")

    view = memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data.data
    if len(view) == 0:
        raise ImageError(name, "file is empty (0 bytes)")
    fmt, header = _sniff(view)
    if not fmt:
        raise ImageError(
            name, "not a recognised image format (supported: PNG, JPEG, TIFF, BMP, WebP, PNM)"
        )
    try:
        height, width = header(view)
    except (ValueError, struct.error) as exc:
        raise ImageError(name, f"corrupt {fmt} file: {exc}") from None
    if height <= 0 or width <= 0:
        raise ImageError(name, f"{fmt} header declares an empty image ({width}x{height})")
    if height * width > max_pixels:
        raise ImageError(
            name,
            f"{fmt} header declares {width}x{height} pixels, more than the limit of "
            f"{max_pixels} (corrupt file or decompression bomb)",
        )
    if max_decoded_bytes is not None:
        cost = height * width * _decoded_bytes_per_pixel(fmt, view)
        if cost > max_decoded_bytes:
            raise ImageError(
                name,
                f"{fmt} image of {width}x{height} pixels would take {cost} bytes to decode, "
                f"more than the limit of {max_decoded_bytes} (reduce its size or bit depth)",
            )
    if fmt == "JPEG":
        # libjpeg decodes a truncated file with a warning and grey filler; refuse it instead.
        # 0xFFD9 cannot occur inside entropy-coded data, so it must follow the last scan.
        raw = view.tobytes() if isinstance(view, memoryview) else bytes(view)
        if raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda"):
            raise ImageError(name, "truncated JPEG file (no end-of-image marker)")
        # JPEG carries no alpha nor 16-bit samples: let libjpeg produce gray directly
        # (cheaper, and IMREAD_GRAYSCALE applies the EXIF orientation).
        flags = cv2.IMREAD_GRAYSCALE
    else:
        flags = cv2.IMREAD_UNCHANGED
    if fmt == "PNG":
        data = _strip_png_iccp(view)
    buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:
        raise ImageError(
            name, f"corrupt {fmt} file ({str(exc).strip().splitlines()[-1]})"
        ) from None
    if img is None:
        raise ImageError(name, f"corrupt or truncated {fmt} file (decoder failed)")
    if img.shape[0] * img.shape[1] > max_pixels:  # header lied (e.g. multi-frame files)
        raise ImageError(name, f"decoded image is larger than the limit of {max_pixels} pixels")
    return _to_gray_u8(img, name)


# ---------------------------------------------------------------------- preprocessing


class InkLocation(NamedTuple):
    """Where the signature is, in the coordinates of the raw image.

    ``box`` follows the reference's slicing: the crop is
    ``img[rmin:rmax, cmin:cmax]`` (the last ink row/column is excluded).
    ``r_center``/``c_center`` are the ink's centre of mass relative to
    ``(rmin, cmin)``, truncated to int.
    """

    threshold: int
    rmin: int
    rmax: int
    cmin: int
    cmax: int
    r_center: int
    c_center: int
    contrast: float


def _histogram(img: np.ndarray) -> np.ndarray:
    """256-bin int64 histogram of a uint8 image."""
    if img.size < 1 << 24:
        # calcHist is ~3x faster than bincount; its float32 counts are exact below 2**24.
        return cv2.calcHist([img], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return np.bincount(img.ravel(), minlength=256)


def otsu_threshold(img: np.ndarray, hist: np.ndarray | None = None) -> int:
    """Otsu's threshold with scikit-image ``threshold_otsu`` semantics.

    Pixels ``> threshold`` are background. The histogram spans only the
    image's own grey range and ties go to the lowest level, exactly like
    scikit-image, so thresholds agree bit for bit. A uniform image returns its
    single grey level.

    Parameters
    ----------
    img : numpy.ndarray
        2-D uint8 image.
    hist : numpy.ndarray, optional
        Its 256-bin histogram, when already computed.
    """
    counts = _histogram(img) if hist is None else hist
    levels = np.nonzero(counts)[0]
    lo, hi = int(levels[0]), int(levels[-1])
    if lo == hi:
        return lo
    # Same dtypes and operation order as scikit-image (float32 counts, int levels):
    # the float32 product of the class weights decides near-ties, so float64
    # arithmetic would pick a different level on some real scans.
    counts = counts[lo : hi + 1].astype(np.float32)
    values = np.arange(lo, hi + 1, dtype=np.int64)
    w1 = np.cumsum(counts)
    w2 = np.cumsum(counts[::-1])[::-1]
    m1 = np.cumsum(counts * values) / w1
    m2 = (np.cumsum((counts * values)[::-1]) / w2[::-1])[::-1]
    between = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    return lo + int(np.argmax(between))


def _gaussian_kernel(sigma: float) -> np.ndarray:
    """1-D Gaussian kernel truncated at 4 sigma, as SciPy's ``gaussian_filter`` builds it."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


_INK_KERNEL = _gaussian_kernel(_INK_SIGMA)
_INK_RADIUS = len(_INK_KERNEL) // 2
# A float32 blur of 0..255 data errs by < 1e-4 grey levels (measured); pixels closer
# than this to the threshold are re-decided in float64.
_FLOAT32_MARGIN = 2e-3
# Beyond this many undecided pixels (e.g. flat synthetic images) a full float64 blur is cheaper.
_MAX_RECHECK = 4096


def _ink_mask(img: np.ndarray, threshold: float) -> np.ndarray:
    """``gaussian(img, 2) <= threshold`` as uint8 0/1, decided as in float64.

    The blur runs in float32 (2-3x faster than float64); the few pixels whose
    float32 value is too close to the threshold to be trusted are recomputed
    exactly from their 17x17 neighbourhood (edge replicated).
    """
    limit = threshold + _INK_EPS
    blurred = cv2.sepFilter2D(
        img, cv2.CV_32F, _INK_KERNEL, _INK_KERNEL, borderType=cv2.BORDER_REPLICATE
    )
    mask = (blurred <= np.float32(limit)).view(np.uint8)
    unsure = cv2.inRange(blurred, threshold - _FLOAT32_MARGIN, threshold + _FLOAT32_MARGIN)
    n_unsure = cv2.countNonZero(unsure)
    if n_unsure == 0:
        return mask
    if n_unsure > _MAX_RECHECK:
        exact = cv2.sepFilter2D(
            img.astype(np.float64),
            cv2.CV_64F,
            _INK_KERNEL,
            _INK_KERNEL,
            borderType=cv2.BORDER_REPLICATE,
        )
        return (exact <= limit).view(np.uint8)
    # findNonZero is ~5x faster than np.nonzero on a full-page mask.
    points = cv2.findNonZero(unsure).reshape(-1, 2)
    rr, cc = points[:, 1], points[:, 0]
    offsets = np.arange(-_INK_RADIUS, _INK_RADIUS + 1)
    ri = np.clip(rr[:, None] + offsets, 0, img.shape[0] - 1)
    ci = np.clip(cc[:, None] + offsets, 0, img.shape[1] - 1)
    patches = img[ri[:, :, None], ci[:, None, :]].astype(np.float64)
    values = np.einsum("i,nij,j->n", _INK_KERNEL, patches, _INK_KERNEL)
    mask[rr, cc] = values <= limit
    return mask


def locate_signature(img: np.ndarray, source: str = "<image>") -> InkLocation:
    """Find the ink: Otsu threshold, tight box and centre of mass.

    Parameters
    ----------
    img : numpy.ndarray
        2-D uint8 grayscale image, dark ink on light paper.
    source : str
        Name used in error messages.

    Raises
    ------
    ImageError
        If the image holds no usable ink: uniform, too little contrast between
        the two Otsu classes (:data:`MIN_INK_CONTRAST`), or no pixel dark
        enough once smoothed.
    """
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ImageError(source, f"expected a 2-D uint8 image, got {img.dtype} {img.shape}")
    if img.size == 0:
        raise ImageError(source, "image is empty")
    img = np.ascontiguousarray(img)
    hist = _histogram(img)
    threshold = otsu_threshold(img, hist)
    paper = hist[threshold + 1 :]
    if paper.sum() == 0:
        raise ImageError(source, f"blank image (uniform grey level {threshold})")
    levels = np.arange(256, dtype=np.float64)
    ink_mean = (hist[: threshold + 1] @ levels[: threshold + 1]) / hist[: threshold + 1].sum()
    paper_mean = (paper @ levels[threshold + 1 :]) / paper.sum()
    contrast = float(paper_mean - ink_mean)
    if contrast < MIN_INK_CONTRAST:
        raise ImageError(
            source,
            f"no ink found: contrast between ink and paper is {contrast:.1f} grey levels "
            f"(blank page? minimum {MIN_INK_CONTRAST:g})",
        )
    level: float = threshold
    if hist[:threshold].sum() == 0:
        # Binarised image: the ink class is a single grey level, so "blur <= t" only
        # keeps pixels whose whole 17x17 neighbourhood is ink and thin strokes vanish
        # (the reference then finds nothing at all and fails). Locate the ink at the
        # midpoint between the two class means instead. Never happens on real scans.
        level = (ink_mean + paper_mean) / 2.0
    mask = _ink_mask(img, level)
    rows = cv2.reduce(mask, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    cols = cv2.reduce(mask, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    total = int(rows.sum(dtype=np.int64))
    if total == 0:
        raise ImageError(source, "no ink found (only isolated specks darker than the paper)")
    _check_not_inverted(mask, total, source)
    r_idx = np.flatnonzero(rows)
    c_idx = np.flatnonzero(cols)
    rmin, rmax, cmin, cmax = int(r_idx[0]), int(r_idx[-1]), int(c_idx[0]), int(c_idx[-1])
    # Integer sums are exact, so this equals the reference's float mean of the ink coordinates.
    r_mean = int(rows.astype(np.int64) @ np.arange(len(rows), dtype=np.int64)) / total
    c_mean = int(cols.astype(np.int64) @ np.arange(len(cols), dtype=np.int64)) / total
    return InkLocation(
        threshold=threshold,
        rmin=rmin,
        rmax=rmax,
        cmin=cmin,
        cmax=cmax,
        r_center=int(r_mean - rmin),
        c_center=int(c_mean - cmin),
        contrast=contrast,
    )


def _check_not_inverted(mask: np.ndarray, total: int, source: str) -> None:
    """Refuse an image whose "ink" is most of the page or runs along two of its edges."""
    share = total / mask.size
    if share > MAX_INK_FRACTION:
        raise ImageError(
            source,
            f"{100 * share:.0f} % of the image reads as ink: an inverted scan (light ink on "
            "dark paper) or a dark background; use dark ink on light paper",
        )
    edges = {
        "top": mask[0],
        "bottom": mask[-1],
        "left": mask[:, 0],
        "right": mask[:, -1],
    }
    dark = [side for side, edge in edges.items() if float(edge.mean()) > MAX_EDGE_INK_FRACTION]
    if len(dark) >= 2:
        raise ImageError(
            source,
            f"dark bands run along the {' and '.join(dark)} edges (over "
            f"{100 * MAX_EDGE_INK_FRACTION:.0f} % of each reads as ink): a scanner border; "
            "crop it before enrolling",
        )


def _start_on_canvas(center: int, size: int, canvas: int) -> int:
    """Reference placement along one axis: centre of mass at the canvas centre, kept inside."""
    start = canvas // 2 - center
    overflow = start + size - canvas
    if overflow > 0:
        start -= overflow
    return max(start, 0)


class _Placed(NamedTuple):
    crop: np.ndarray  # grey crop (possibly scaled down), paper > threshold
    threshold: int
    r_start: int
    c_start: int


def _place(img: np.ndarray, canvas_size: tuple[int, int], source: str) -> _Placed:
    loc = locate_signature(img, source)
    crop = img[loc.rmin : loc.rmax, loc.cmin : loc.cmax]
    if crop.size == 0:
        raise ImageError(source, "ink occupies a single row or column; nothing to crop")
    rows, cols = crop.shape
    max_rows, max_cols = canvas_size
    r_center, c_center = loc.r_center, loc.c_center
    if rows > max_rows or cols > max_cols:
        # Deviation from the reference, which crops here: scale down so no ink is lost.
        scale = min(max_rows / rows, max_cols / cols)
        new_rows = max(1, min(max_rows, int(round(rows * scale))))
        new_cols = max(1, min(max_cols, int(round(cols * scale))))
        logger.debug(
            "%s: signature %dx%d larger than canvas %s, scaling by %.3f",
            source,
            rows,
            cols,
            canvas_size,
            scale,
        )
        crop = cv2.resize(crop, (new_cols, new_rows), interpolation=cv2.INTER_AREA)
        r_center = int(r_center * new_rows / rows)
        c_center = int(c_center * new_cols / cols)
        rows, cols = new_rows, new_cols
    r_start = _start_on_canvas(r_center, rows, max_rows)
    c_start = _start_on_canvas(c_center, cols, max_cols)
    return _Placed(crop, loc.threshold, r_start, c_start)


def center_on_canvas(
    img: np.ndarray, canvas_size: tuple[int, int], source: str = "<image>"
) -> np.ndarray:
    """Stage 1 of the pipeline: the signature centred on a white canvas, paper set to 255.

    Equal to the reference's ``normalize_image`` output for signatures that fit
    the canvas (larger ones are scaled down). Grey ink on white (not inverted).
    Mostly for inspection and tests; :func:`preprocess_signature` never builds
    this full-size canvas.
    """
    canvas_size = _as_size(canvas_size, "canvas_size")
    placed = _place(img, canvas_size, source)
    canvas = np.full(canvas_size, 255, dtype=np.uint8)
    rows, cols = placed.crop.shape
    region = canvas[placed.r_start : placed.r_start + rows, placed.c_start : placed.c_start + cols]
    region[...] = placed.crop
    region[region > placed.threshold] = 255
    return canvas


def _cover_size(shape: tuple[int, int], img_size: tuple[int, int]) -> tuple[int, int]:
    """Reference resize target: keep the aspect ratio, cover ``img_size``."""
    height, width = img_size
    width_ratio = shape[1] / width
    height_ratio = shape[0] / height
    if width_ratio > height_ratio:
        return height, int(round(shape[1] / height_ratio))
    return int(round(shape[0] / width_ratio)), width


class _CanvasPool:
    """Zeroed float32 canvases, reused across calls.

    A fresh 952x1360 float32 canvas is 5 MB of new pages to fault in on every
    image, which cost as much as the resize itself; a used canvas is zeroed
    again over the region that was written and kept (at most ``keep`` per
    shape, so memory stays bounded by the concurrency, not by the call count).
    """

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._free: dict[tuple[int, int], list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, int]) -> np.ndarray:
        with self._lock:
            stack = self._free.get(shape)
            if stack:
                return stack.pop()
        return np.zeros(shape, dtype=np.float32)

    def give(self, canvas: np.ndarray, region: tuple[slice, slice]) -> None:
        canvas[region] = 0.0
        with self._lock:
            stack = self._free.setdefault(canvas.shape, [])
            if len(stack) < self.keep:
                stack.append(canvas)


_CANVASES = _CanvasPool()


def preprocess_signature(
    img: np.ndarray,
    canvas_size: tuple[int, int],
    img_size: tuple[int, int] = IMG_SIZE,
    *,
    source: str = "<image>",
) -> np.ndarray:
    """Preprocess one grayscale signature (see the module docstring for the steps).

    Parameters
    ----------
    img : numpy.ndarray
        2-D uint8 grayscale image, dark ink on light paper (see :func:`read_image`).
    canvas_size : tuple of int
        (height, width) canvas of the dataset (:data:`CANVAS_SIZES`).
    img_size : tuple of int
        Output (height, width).
    source : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``img_size``: ink high, background 0.

    Raises
    ------
    ImageError
        If the image holds no usable ink.
    """
    canvas_size = _as_size(canvas_size, "canvas_size")
    img_size = _as_size(img_size, "img_size")
    placed = _place(img, canvas_size, source)
    t = placed.threshold
    # Background removal and inversion on the crop only (the rest of the canvas is 0):
    # 255 - x where x <= t, else 0.
    inv = cv2.threshold(255 - placed.crop, 254 - t, 255, cv2.THRESH_TOZERO)[1]

    new_h, new_w = _cover_size(canvas_size, img_size)
    # skimage.transform.resize(anti_aliasing=True): Gaussian prefilter with sigma
    # (factor - 1) / 2 per axis (zero padding), then pixel-centre bilinear sampling.
    # The canvas is zero outside the crop, so only the crop plus the kernel radius
    # needs filtering; the result is then laid on a zero canvas and sampled.
    sig_y = max(0.0, (canvas_size[0] / new_h - 1.0) / 2.0)
    sig_x = max(0.0, (canvas_size[1] / new_w - 1.0) / 2.0)
    ky = _gaussian_kernel(sig_y) if sig_y > 0 else np.ones(1)
    kx = _gaussian_kernel(sig_x) if sig_x > 0 else np.ones(1)
    py, px = len(ky) // 2, len(kx) // 2
    rows, cols = inv.shape
    padded = cv2.copyMakeBorder(inv, py, py, px, px, cv2.BORDER_CONSTANT, value=0).astype(
        np.float32
    )
    blurred = cv2.sepFilter2D(padded, cv2.CV_32F, kx, ky, borderType=cv2.BORDER_CONSTANT)
    r0, c0 = placed.r_start - py, placed.c_start - px
    # Clip the blurred patch to the canvas (zero padding beyond it, as in the reference).
    sr0, sc0 = max(0, -r0), max(0, -c0)
    dr0, dc0 = max(0, r0), max(0, c0)
    dr1 = min(canvas_size[0], r0 + blurred.shape[0])
    dc1 = min(canvas_size[1], c0 + blurred.shape[1])
    region = (slice(dr0, dr1), slice(dc0, dc1))
    canvas = _CANVASES.take(canvas_size)
    try:
        canvas[region] = blurred[sr0 : sr0 + dr1 - dr0, sc0 : sc0 + dc1 - dc0]
        resized = cv2.resize(canvas, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    finally:
        _CANVASES.give(canvas, region)

    height, width = img_size
    if new_w > width:
        start = int(round((new_w - width) / 2.0))
        resized = resized[:, start : start + width]
    else:
        start = int(round((new_h - height) / 2.0))
        resized = resized[start : start + height, :]
    # The reference truncates (astype(uint8)) rather than rounds.
    return np.clip(resized, 0.0, 255.0).astype(np.uint8)


def preprocess_image(
    source: ImageSource,
    config: PreprocessConfig | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read and preprocess one image: ``uint8`` of shape ``config.img_size``.

    ``config`` defaults to ``PreprocessConfig.for_dataset("default")``.

    Raises
    ------
    ImageError
        If the image cannot be read or holds no usable ink.
    """
    config = config or PreprocessConfig()
    img = read_image(source, max_pixels=max_pixels)
    return preprocess_signature(
        img, config.canvas_size, config.img_size, source=_source_name(source)
    )


# ----------------------------------------------------------------------- cropping


def crop_center(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre crop of the last two axes (works on H x W, C x H x W and N x C x H x W).

    Offsets are ``(H - h) // 2`` and ``(W - w) // 2``. Returns a view.
    """
    h, w = _as_size(size, "size")
    height, width = x.shape[-2:]
    if h > height or w > width:
        raise ValueError(f"crop size {(h, w)} is larger than the image {(height, width)}")
    top, left = (height - h) // 2, (width - w) // 2
    return x[..., top : top + h, left : left + w]


def random_crop(
    x: np.ndarray, size: tuple[int, int], rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Random crop of the last two axes, uniformly over all valid offsets.

    A 2-D (H x W) or 3-D (C x H x W) array gets one crop; a 4-D (N x C x H x W)
    batch gets an independent crop per sample. ``rng`` is a NumPy Generator or
    a seed; the same seed gives the same crops.
    """
    h, w = _as_size(size, "size")
    height, width = x.shape[-2:]
    if h > height or w > width:
        raise ValueError(f"crop size {(h, w)} is larger than the image {(height, width)}")
    rng = np.random.default_rng(rng)
    if x.ndim == 4:
        tops = rng.integers(0, height - h + 1, size=len(x))
        lefts = rng.integers(0, width - w + 1, size=len(x))
        out = np.empty(x.shape[:2] + (h, w), dtype=x.dtype)
        for i, (top, left) in enumerate(zip(tops, lefts, strict=True)):
            out[i] = x[i, :, top : top + h, left : left + w]
        return out
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    return x[..., top : top + h, left : left + w]


def to_network_input(x: np.ndarray) -> np.ndarray:
    """Scale preprocessed ``uint8`` pixels to float32 in [0, 1] (``x / 255``), as SigNet expects."""
    return np.asarray(x, dtype=np.float32) * np.float32(1.0 / 255.0)


# -------------------------------------------------------------------------- batch


@dataclass
class BatchResult:
    """Outcome of :func:`preprocess_batch`.

    Attributes
    ----------
    images : numpy.ndarray
        ``uint8`` array (n_kept, 1, H, W) of the images that succeeded, in input order.
    kept : list of int
        Index in the input sequence of each row of ``images``.
    skipped : list of (str, str)
        (source, reason) of each image that failed.
    """

    images: np.ndarray
    kept: list[int]
    skipped: list[tuple[str, str]]


def _process_chunk(
    items: list[tuple[int, Any]],
    canvas_size: tuple[int, int],
    img_size: tuple[int, int],
    max_pixels: int,
) -> list[tuple[int, np.ndarray | None, str | None]]:
    # Each joblib worker owns one core: OpenCV's own thread pool would oversubscribe.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        out: list[tuple[int, np.ndarray | None, str | None]] = []
        for index, source in items:
            try:
                img = read_image(source, max_pixels=max_pixels)
                out.append(
                    (
                        index,
                        preprocess_signature(
                            img, canvas_size, img_size, source=_source_name(source)
                        ),
                        None,
                    )
                )
            except ImageError as exc:
                out.append((index, None, exc.reason))
        return out
    finally:
        cv2.setNumThreads(threads)


def _chunks(sources: Sequence[Any], size: int) -> Iterator[list[tuple[int, Any]]]:
    for start in range(0, len(sources), size):
        yield list(enumerate(sources[start : start + size], start))


def preprocess_batch(
    sources: Sequence[ImageSource],
    canvas_size: tuple[int, int],
    *,
    img_size: tuple[int, int] = IMG_SIZE,
    n_jobs: int = 2,
    progress: bool = True,
    chunk_size: int = 32,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> BatchResult:
    """Read and preprocess many images in parallel; bad images are skipped, not fatal.

    Parameters
    ----------
    sources : sequence
        Paths, encoded bytes or arrays (anything :func:`read_image` accepts).
    canvas_size : tuple of int
        (height, width) canvas of the dataset.
    img_size : tuple of int
        Output (height, width).
    n_jobs : int
        Worker processes (joblib); 1 runs in this process.
    progress : bool
        Show a tqdm progress bar (only on a terminal).
    chunk_size : int
        Images per task, to keep inter-process overhead small.
    max_pixels : int
        Passed to :func:`read_image`.

    Returns
    -------
    BatchResult
        Images of the successful sources in input order, their indices, and
        ``(source, reason)`` for each failure (also logged as a warning).
    """
    from sigver._util import progress_bar

    canvas_size = _as_size(canvas_size, "canvas_size")
    img_size = _as_size(img_size, "img_size")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    sources = list(sources)
    chunks = _chunks(sources, chunk_size)
    n_chunks = -(-len(sources) // chunk_size)
    if n_jobs == 1 or n_chunks <= 1:
        results: Iterator[list[Any]] = (
            _process_chunk(c, canvas_size, img_size, max_pixels) for c in chunks
        )
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_process_chunk)(c, canvas_size, img_size, max_pixels) for c in chunks
        )
    images = np.empty((len(sources), 1) + img_size, dtype=np.uint8)
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    with progress_bar(total=len(sources), desc="preprocess", unit="img", enabled=progress) as bar:
        for chunk in results:
            for index, image, reason in chunk:
                if image is None:
                    name = _source_name(sources[index])
                    if not isinstance(sources[index], (str, os.PathLike)):
                        name = f"{name}[{index}]"
                    logger.warning("skipping %s: %s", name, reason)
                    skipped.append((name, str(reason)))
                else:
                    images[len(kept), 0] = image
                    kept.append(index)
            bar.update(len(chunk))
    if len(kept) < len(sources):
        images = images[: len(kept)].copy()
    return BatchResult(images=images, kept=kept, skipped=skipped)
