"""Small fixtures for tests and benchmarks of the enrollment application.

Nothing here is needed in production; it lives in the package (like
``numpy.testing``) so that tests, benchmarks and downstream integrators can
build a complete, fast environment without the shipped model::

    from enrollment.testing import build_tiny_model, draw_signature, encode_png

    model_path = build_tiny_model(tmp_path / "models")   # + tiny.background.npz
    png = encode_png(draw_signature(writer=3, sample=0))
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "build_tiny_model",
    "chromium_paths",
    "draw_signature",
    "encode_png",
    "free_port",
    "headless_chromium",
    "serve_in_thread",
    "write_synthetic_writer",
    "draw_signature",
    "encode_png",
    "postgres_unavailable_reason",
    "temporary_postgres",
]

#: Canvas used by the tiny model's preprocessing preset; small, so that
#: preprocessing the drawn test images is fast.
TINY_CANVAS = (300, 450)


def draw_signature(
    writer: int,
    sample: int,
    *,
    size: tuple[int, int] = (200, 320),
    forgery: bool = False,
) -> np.ndarray:
    """A synthetic "signature": a writer-specific stroke, jittered per sample.

    Parameters
    ----------
    writer : int
        Seed of the writer's base shape (same writer = similar strokes).
    sample : int
        Seed of the per-sample jitter.
    size : tuple of int
        (height, width) of the white page.
    forgery : bool
        Draw the writer's shape with a heavier, shakier hand (a crude skilled forgery).

    Returns
    -------
    numpy.ndarray
        ``uint8`` grayscale image, dark ink on white.
    """
    import cv2

    height, width = size
    base_rng = np.random.default_rng(1_000_003 * (writer + 1))
    n_points = int(base_rng.integers(7, 12))
    xs = np.linspace(0.1 * width, 0.9 * width, n_points)
    ys = base_rng.uniform(0.25 * height, 0.75 * height, n_points)
    loops = base_rng.integers(0, 3)
    rng = np.random.default_rng([writer + 1, sample + 1, int(forgery)])
    jitter = 10.0 if forgery else 3.0
    pts = np.stack([xs, ys], axis=1) + rng.normal(0, jitter, (n_points, 2))
    # Catmull-Rom-like densification so strokes look curved, not polygonal.
    t = np.linspace(0, n_points - 1, n_points * 12)
    curve = np.stack([np.interp(t, np.arange(n_points), pts[:, k]) for k in range(2)], axis=1)
    curve += 4.0 * np.stack([np.sin(t * (1.5 + loops)), np.cos(t * (2.0 + loops))], axis=1)
    page = np.full((height, width), 255, dtype=np.uint8)
    thickness = 3 if forgery else 2
    cv2.polylines(page, [np.round(curve).astype(np.int32)], False, 20, thickness, cv2.LINE_AA)
    # A flourish under the name, as many signatures have.
    y0 = int(0.8 * height + rng.normal(0, 2))
    cv2.line(page, (int(0.15 * width), y0), (int(0.7 * width), y0 - 5), 30, 2, cv2.LINE_AA)
    return page


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a ``uint8`` image."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - encoding a valid uint8 array does not fail
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def build_tiny_model(
    folder: str | os.PathLike[str],
    *,
    name: str = "tiny",
    feature_dim: int = 32,
    n_background_writers: int = 12,
    samples_per_writer: int = 3,
    seed: int = 0,
    arch: str = "sigresnet",
    arch_options: dict[str, object] | None = None,
    classifier: dict[str, object] | None = None,
) -> Path:
    """Write a random-init checkpoint plus its background negatives.

    Parameters
    ----------
    folder : path-like
        Where ``<name>.pt``, its ``.sha256`` sidecar and ``<name>.background.npz`` go.
    name : str
        File stem.
    feature_dim : int
        Feature size of the tiny network (ignored for architectures without the option).
    n_background_writers, samples_per_writer : int
        Size of the background set (drawn writers ``10_000 + i``).
    seed : int
        Torch seed of the random initialisation.
    arch : str
        Registry name; the default is a very narrow SigResNet.
    arch_options : dict, optional
        Builder options (default: narrow widths and ``feature_dim``).
    classifier : dict, optional
        Per-user SVM overrides recorded in the metadata (``WeightsMeta.classifier``).

    Returns
    -------
    pathlib.Path
        The checkpoint path.
    """
    import torch

    from sigver.features import Extractor
    from sigver.featureset import FeatureSet, save_features
    from sigver.models import get_model
    from sigver.models.checkpoint import WeightsMeta, save_checkpoint
    from sigver.preprocessing import PreprocessConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if arch_options is None:
        arch_options = (
            {"widths": (4, 8, 8, 16), "feature_dim": feature_dim} if arch == "sigresnet" else {}
        )
    model = get_model(arch, **arch_options)
    preprocess = PreprocessConfig(canvas_size=TINY_CANVAS)
    meta = WeightsMeta.for_model(
        model,
        name=name,
        version="0",
        preprocess=preprocess.to_dict(),
        extra={"notes": "random initialisation, for tests only"},
        classifier=dict(classifier or {}),
    )
    path = folder / f"{name}.pt"
    save_checkpoint(path, model, meta)
    extractor = Extractor.from_checkpoint(path)

    from sigver.preprocessing import preprocess_signature

    writers = list(range(10_000, 10_000 + n_background_writers))
    images = [
        preprocess_signature(draw_signature(w, s), preprocess.canvas_size, preprocess.img_size)
        for w in writers
        for s in range(samples_per_writer)
    ]
    features = extractor.extract(np.stack(images)[:, None])
    featureset = FeatureSet(
        features=features,
        y=np.repeat(np.arange(len(writers)), samples_per_writer),
        yforg=np.zeros(len(features), dtype=np.int8),
        user_ids=np.array([f"bg{w}" for w in writers]),
        filenames=np.array([f"bg{w}_{s}.png" for w in writers for s in range(samples_per_writer)]),
        meta={"model_id": extractor.model_id, "model_sha256": extractor.sha256},
    )
    save_features(folder / f"{name}.background.npz", featureset)
    return path


def free_port() -> int:
    """A TCP port free on the loopback interface now (for test and benchmark servers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, *, timeout_s: float = 30.0) -> Iterator[str]:
    """Run an ASGI app under a real uvicorn server on a free loopback port.

    Yields the base URL (``http://127.0.0.1:<port>``); the server stops on exit.
    """
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def chromium_paths() -> tuple[str | None, str | None, str]:
    """Paths of a Chromium browser and its chromedriver, and why not when missing.

    Looks at ``$CHROME_BIN`` / ``$CHROMEDRIVER`` first, then Debian's
    ``chromium`` and ``chromedriver`` (packages ``chromium``, ``chromium-driver``).

    Returns
    -------
    (str or None, str or None, str)
        Browser, driver, and an explanation (empty when both were found).
    """

    def find(env: str, names: tuple[str, ...]) -> str | None:
        if os.environ.get(env):
            return shutil.which(os.environ[env])
        return next(filter(None, (shutil.which(n) for n in names)), None)

    browser = find("CHROME_BIN", ("chromium", "chromium-browser"))
    driver = find("CHROMEDRIVER", ("chromedriver",))
    missing = [what for what, path in (("chromium", browser), ("chromedriver", driver)) if not path]
    why = ""
    if missing:
        why = (
            f"{' and '.join(missing)} not found: apt-get install chromium chromium-driver "
            "(or set CHROME_BIN / CHROMEDRIVER)"
        )
    return browser, driver, why


def headless_chromium(*, width: int = 1280, height: int = 900) -> Any:
    """A selenium WebDriver on headless Chromium (no sandbox: CI runs as root).

    Raises
    ------
    RuntimeError
        If selenium, Chromium or chromedriver is missing.
    """
    browser, driver, why = chromium_paths()
    if why:
        raise RuntimeError(why)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:  # pragma: no cover - selenium is in the dev extra
        raise RuntimeError("selenium is not installed (pip install selenium)") from exc
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def write_synthetic_writer(
    folder: str | os.PathLike[str],
    writer: int,
    *,
    seed: int = 2024,
    n_references: int = 5,
    n_genuine: int = 2,
    n_forgeries: int = 2,
) -> dict[str, list[Path]]:
    """PNG files of one :mod:`sigver.synth` writer, laid out as ``sigver demo`` does.

    Returns
    -------
    dict
        ``{"references": [...], "genuine": [...], "skilled": [...]}`` paths under
        ``folder`` (``ref-00.png``, ``genuine-00.png``, ``forgery-00.png``...).
    """
    from sigver._util import write_png
    from sigver.synth import generate_writer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _, genuine, forgeries = generate_writer(seed, writer, n_references + n_genuine, n_forgeries)
    return {
        "references": [
            write_png(folder / f"ref-{i:02d}.png", img)
            for i, img in enumerate(genuine[:n_references])
        ],
        "genuine": [
            write_png(folder / f"genuine-{i:02d}.png", img)
            for i, img in enumerate(genuine[n_references:])
        ],
        "skilled": [
            write_png(folder / f"forgery-{i:02d}.png", img) for i, img in enumerate(forgeries)
        ],
    }


def _postgres_bin(name: str) -> str | None:
    import glob
    import shutil

    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def postgres_unavailable_reason() -> str | None:
    """Why :func:`temporary_postgres` cannot run here, or ``None`` if it can."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg[binary,pool] is not installed"
    if _postgres_bin("initdb") is None or _postgres_bin("pg_ctl") is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        import pwd
        import shutil

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to drop privileges"
    return None


class temporary_postgres:  # noqa: N801 - used like a function: ``with temporary_postgres() as url``
    """A throwaway PostgreSQL cluster in a temporary folder (tests and benchmarks).

    ``initdb`` + ``pg_ctl start`` on a free loopback port with trust
    authentication; stopped and deleted on exit. As root, the server runs as
    the ``postgres`` user (PostgreSQL refuses to run as root).

    Yields
    ------
    str
        ``postgresql://sigver@127.0.0.1:<port>/postgres``
    """

    def __init__(self) -> None:
        self.url = ""
        self._dir: Path | None = None

    def _run(self, *args: str) -> None:
        import subprocess

        cmd = list(args)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")

    def __enter__(self) -> str:
        import socket
        import tempfile

        reason = postgres_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self._dir = Path(tempfile.mkdtemp(prefix="sigver-pg-"))
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam("postgres")
            os.chown(self._dir, entry.pw_uid, entry.pw_gid)
        data = self._dir / "data"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self._run(str(_postgres_bin("initdb")), "-D", str(data), "-A", "trust", "-U", "sigver",
                  "-E", "UTF8", "--no-sync")  # fmt: skip
        options = f"-p {port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(_postgres_bin("pg_ctl")), "-D", str(data), "-o", options, "-w",
                  "-l", str(self._dir / "log"), "start")  # fmt: skip
        self.url = f"postgresql://sigver@127.0.0.1:{port}/postgres"
        return self.url

    def __exit__(self, *exc: object) -> None:
        import shutil

        if self._dir is None:
            return
        try:
            self._run(str(_postgres_bin("pg_ctl")), "-D", str(self._dir / "data"), "-m",
                      "immediate", "-w", "stop")  # fmt: skip
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
