"""Enrollment and verification (Python API and CLI) on a tiny random-init model."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from enrollment import (
    InsufficientReferencesError,
    InvalidUserIdError,
    ModelMismatchError,
    UserExistsError,
    UserNotFoundError,
    UserStore,
    VerificationResult,
    Verifier,
)
from enrollment.testing import build_tiny_model, draw_signature, encode_png
from sigver.cli import main
from sigver.errors import ImageError, ModelError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """PNG files: writer 1 samples 0-7, writer 2 samples 0-5, a forgery, bad files."""
    folder = tmp_path_factory.mktemp("images")
    out = {}
    for writer, n in ((1, 8), (2, 6)):
        for s in range(n):
            path = folder / f"w{writer}_{s}.png"
            cv2.imwrite(str(path), draw_signature(writer, s))
            out[f"w{writer}_{s}"] = path
    cv2.imwrite(str(folder / "forgery.png"), draw_signature(1, 0, forgery=True))
    out["forgery"] = folder / "forgery.png"
    (folder / "corrupt.png").write_bytes(encode_png(draw_signature(1, 0))[:200])
    out["corrupt"] = folder / "corrupt.png"
    cv2.imwrite(str(folder / "blank.png"), np.full((100, 150), 255, np.uint8))
    out["blank"] = folder / "blank.png"
    (folder / "text.png").write_text("hello, I am not an image")
    out["text"] = folder / "text.png"
    return out


def refs(images, writer=1, n=4, start=0):
    return [images[f"w{writer}_{s}"] for s in range(start, start + n)]


@pytest.fixture
def verifier(model_path, tmp_path):
    return Verifier(home=tmp_path / "home", model=model_path)


def test_enroll_then_verify_all_input_kinds_agree(verifier, images):
    result = verifier.enroll("alice", refs(images))
    assert result.added == 4 and result.user.n_references == 4
    assert result.n_negatives == verifier.n_background == 36
    assert result.threshold == 0.0  # tiny model: no calibration -> decision boundary
    path = images["w1_6"]
    by_path = verifier.verify("alice", path)
    by_bytes = verifier.verify("alice", path.read_bytes())
    by_array = verifier.verify("alice", cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    assert isinstance(by_path, VerificationResult)
    assert by_path.score == pytest.approx(by_bytes.score, abs=1e-9)
    assert by_path.score == pytest.approx(by_array.score, abs=1e-6)
    assert by_path.image_sha256 == by_bytes.image_sha256  # file bytes hashed
    assert by_path.accepted == (by_path.score >= by_path.threshold)
    assert by_path.model_id == verifier.model_id
    batch = verifier.verify_batch("alice", [images["w1_6"], images["w2_0"], images["forgery"]])
    assert [r.score for r in batch][0] == pytest.approx(by_path.score, abs=1e-6)
    single = verifier.verify("alice", images["forgery"])
    assert batch[2].score == pytest.approx(single.score, abs=1e-6)
    with pytest.raises(AttributeError):
        by_path.score = 1.0  # frozen


def test_results_survive_a_new_process_view(verifier, model_path, images, tmp_path):
    verifier.enroll("alice", refs(images))
    first = verifier.verify("alice", images["w1_7"])
    fresh = Verifier(home=tmp_path / "home", model=model_path)  # classifier from the store
    again = fresh.verify("alice", images["w1_7"])
    assert again.score == pytest.approx(first.score, abs=1e-9)


def test_duplicate_add_force_and_min_refs(verifier, images):
    verifier.enroll("alice", refs(images))
    with pytest.raises(UserExistsError):
        verifier.enroll("alice", refs(images, start=4))
    with pytest.raises(UserNotFoundError):
        verifier.enroll("bob", refs(images, 2), add=True)
    # add: one new and one already-enrolled image (skipped as duplicate)
    added = verifier.enroll("alice", [images["w1_4"], images["w1_0"]], add=True, threshold=0.5)
    assert added.added == 1 and len(added.duplicates) == 1
    assert added.user.n_references == 5 and added.user.revision == 2
    assert added.threshold == 0.5
    assert verifier.verify("alice", images["w1_6"]).threshold == 0.5
    kept = verifier.enroll("alice", [images["w1_5"]], add=True)
    assert kept.user.threshold == 0.5  # override kept when adding
    forced = verifier.enroll("alice", refs(images, start=2), force=True)
    assert forced.user.n_references == 4 and forced.user.threshold is None
    with pytest.raises(InsufficientReferencesError):
        verifier.enroll("bob", refs(images, 2, n=3))
    with pytest.raises(InsufficientReferencesError):
        verifier.enroll("bob", [images["w2_0"]] * 4)  # 4 copies = 1 distinct image
    assert verifier.enroll("bob", refs(images, 2, n=2), min_references=2).user.n_references == 2
    # the second user learns against the first one's references too
    assert verifier.get_user("bob").n_negatives == 36 + 4


def test_retraining_invalidates_cached_classifier(verifier, images):
    verifier.enroll("alice", refs(images))
    before = verifier.verify("alice", images["w1_6"]).score
    other = Verifier(home=verifier.store.home, extractor=verifier.extractor)
    other.enroll("alice", refs(images, 2), force=True)  # another process re-enrolls
    after = verifier.verify("alice", images["w1_6"]).score
    expected = other.verify("alice", images["w1_6"]).score
    assert after == pytest.approx(expected, abs=1e-9)
    assert after != pytest.approx(before, abs=1e-6)


@pytest.mark.parametrize("bad", ["corrupt", "blank", "text"])
def test_bad_images_are_refused_and_nothing_is_stored(verifier, images, bad):
    with pytest.raises(ImageError) as info:
        verifier.enroll("alice", [*refs(images), images[bad]])
    assert str(images[bad]) in str(info.value)
    assert verifier.store.find_user("alice") is None
    verifier.enroll("alice", refs(images))
    with pytest.raises(ImageError):
        verifier.verify("alice", images[bad])


def test_huge_and_missing_images(verifier, images, model_path, tmp_path):
    from enrollment.config import Settings

    small = Verifier(
        home=tmp_path / "h2", model=model_path, settings=Settings(max_pixels=100 * 100)
    )
    small.enroll("alice", [draw_signature(1, s, size=(90, 100)) for s in range(4)])
    with pytest.raises(ImageError, match="limit"):
        small.verify("alice", images["w1_6"])  # 200x320 > 10,000 pixels
    verifier.enroll("alice", refs(images))
    with pytest.raises(ImageError, match="not found"):
        verifier.verify("alice", tmp_path / "missing.png")
    with pytest.raises(ImageError, match="unsupported"):
        verifier.verify("alice", 12345)  # type: ignore[arg-type]


def test_unknown_user_and_bad_ids(verifier, images):
    with pytest.raises(UserNotFoundError):
        verifier.verify("nobody", images["w1_0"])
    for bad in ("../x", "a/b", "", "x" * 65, "a\x00b"):
        with pytest.raises(InvalidUserIdError):
            verifier.verify(bad, images["w1_0"])
        with pytest.raises(InvalidUserIdError):
            verifier.enroll(bad, refs(images))
    assert not list(verifier.store.home.glob("**/x*"))


def test_other_model_requires_reenrollment(verifier, images, tmp_path):
    verifier.enroll("alice", refs(images))
    other_path = build_tiny_model(tmp_path / "other", seed=1)
    other = Verifier(home=verifier.store.home, model=other_path)
    assert other.model_sha256 != verifier.model_sha256
    with pytest.raises(ModelMismatchError, match="re-enroll"):
        other.verify("alice", images["w1_6"])
    with pytest.raises(ModelMismatchError):
        other.enroll("alice", [images["w1_5"]], add=True)
    # bob enrolled with the other model must not use alice's (incompatible) features
    bob = other.enroll("bob", refs(images, 2))
    assert bob.n_negatives == 36
    other.enroll("alice", refs(images), force=True)
    assert other.verify("alice", images["w1_6"]).model_id == other.model_id


def test_no_negatives_and_in_memory_models_are_refused(model_path, tmp_path, images):
    from enrollment.errors import EnrollmentError
    from sigver.features import Extractor
    from sigver.models import get_model

    bare = Verifier(home=tmp_path / "h", model=model_path, background=np.zeros((0, 0), np.float32))
    with pytest.raises(EnrollmentError, match="no negatives"):
        bare.enroll("alice", refs(images))
    model = get_model("sigresnet", widths=(4, 8, 8, 16), feature_dim=32)
    with pytest.raises(ModelError, match="sha256"):
        Verifier(home=tmp_path / "h", extractor=Extractor(model))


def test_store_images_on_request(verifier, images):
    verifier.enroll("alice", refs(images), store_images=True)
    stored = verifier.store.load_reference_images("alice")
    assert [s for _, s in stored][0] == images["w1_0"].read_bytes()
    verifier.enroll("bob", refs(images, 2))
    assert verifier.store.load_reference_images("bob") == []
    assert verifier.get_user("bob").stored_images == 0


# -- CLI --------------------------------------------------------------------------------


def test_cli_enroll_verify_users_and_exit_codes(model_path, images, tmp_path, capsys):
    base = ["--home", str(tmp_path / "h"), "--model", str(model_path)]
    r = [str(p) for p in refs(images)]
    assert main(["enroll", "--user", "alice", *r, *base]) == 0
    assert "enrolled alice: 4 references" in capsys.readouterr().out
    assert main(["enroll", "--user", "alice", *r, *base]) == 2  # duplicate
    assert main(["enroll", "--user", "../x", *r, *base]) == 2
    capsys.readouterr()

    question = [str(images["w1_6"]), str(images["forgery"])]
    status = main(["verify", "--user", "alice", *question, *base, "--json"])
    out = json.loads(capsys.readouterr().out)
    api = Verifier(home=tmp_path / "h", model=model_path).verify_batch("alice", question)
    assert [x["score"] for x in out["results"]] == pytest.approx([a.score for a in api])
    assert status == (0 if all(a.accepted for a in api) else 1)
    assert out["model_id"] == api[0].model_id

    # a threshold nobody reaches: every image rejected -> exit 1
    assert main(["users", "set-threshold", "alice", "1000", "--home", str(tmp_path / "h")]) == 0
    assert main(["verify", "--user", "alice", *question, *base]) == 1
    assert "REJECT" in capsys.readouterr().out
    assert main(["users", "set-threshold", "alice", "-1000", "--home", str(tmp_path / "h")]) == 0
    assert main(["verify", "--user", "alice", *question, *base]) == 0
    # any unreadable image -> exit 2, the others are still reported
    capsys.readouterr()
    assert main(["verify", "--user", "alice", str(images["corrupt"]), *question, *base]) == 2
    assert "ACCEPT" in capsys.readouterr().out
    assert main(["verify", "--user", "nobody", *question, *base]) == 2

    home = ["--home", str(tmp_path / "h")]
    capsys.readouterr()
    assert main(["users", "list", "--json", *home]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [u["user_id"] for u in listed] == ["alice"] and listed[0]["threshold"] == -1000
    assert main(["users", "show", "alice", *home]) == 0
    assert "references  4" in capsys.readouterr().out
    assert main(["users", "remove", "alice", *home]) == 0
    assert main(["users", "show", "alice", *home]) == 2
    assert main(["users", "list", *home]) == 0
    assert "no users enrolled" in capsys.readouterr().out


def test_cli_home_from_environment(model_path, images, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIGVER_HOME", str(tmp_path / "envhome"))
    r = [str(p) for p in refs(images)]
    assert main(["enroll", "--user", "alice", *r, "--model", str(model_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_references"] == 4
    assert UserStore(tmp_path / "envhome").get_user("alice").n_references == 4


# -- several processes, crashes ---------------------------------------------------------


def _worker(home: str, model: str, writer: int, image_dir: str, queue) -> None:
    """Enroll two users, verify them and the other worker's users, report the scores."""
    try:
        verifier = Verifier(home=home, model=model)
        paths = sorted(Path(image_dir).glob(f"w{writer}_*.png"))
        scores = {}
        for suffix in ("a", "b"):
            user = f"user{writer}{suffix}"
            verifier.enroll(user, paths[:4])
            scores[user] = [verifier.verify(user, paths[-1]).score for _ in range(2)]
        # verify the other worker's users while they may still be enrolling
        for other in ("user1a", "user1b", "user2a", "user2b"):
            try:
                verifier.verify(other, paths[-1])
            except UserNotFoundError:
                pass
        queue.put((writer, scores, None))
    except Exception as exc:  # report instead of dying silently
        queue.put((writer, None, repr(exc)))


def test_concurrent_processes_enroll_and_verify(model_path, tmp_path):
    image_dir = tmp_path / "imgs"
    image_dir.mkdir()
    for writer in (1, 2):
        for s in range(5):
            cv2.imwrite(str(image_dir / f"w{writer}_{s}.png"), draw_signature(writer, s))
    home = tmp_path / "shared-home"
    ctx = multiprocessing.get_context("spawn")  # fork + torch thread pools can deadlock
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(str(home), str(model_path), w, str(image_dir), queue))
        for w in (1, 2)
    ]
    for p in procs:
        p.start()
    reports = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r for r in reports if r[2] is not None]
    assert not errors, errors
    store = UserStore(home)
    users = store.list_users()
    assert [u.user_id for u in users] == ["user1a", "user1b", "user2a", "user2b"]
    assert all(u.n_references == 4 and u.revision == 1 for u in users)
    assert store.integrity_check() == "ok"
    check = Verifier(home=home, model=model_path)
    for writer, scores, _ in reports:
        for user, (first, second) in scores.items():
            assert first == second
            # what the worker saw is what the store now holds
            final = check.verify(user, image_dir / f"w{writer}_4.png").score
            assert final == pytest.approx(first, abs=1e-9)


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from enrollment.store import UserStore

    original = UserStore._write_reference
    calls = {"n": 0}

    def killing(self, conn, user_id, position, ref, now):
        original(self, conn, user_id, position, ref, now)
        calls["n"] += 1
        if calls["n"] == 2:  # user row and two references written, not committed
            os.kill(os.getpid(), signal.SIGKILL)

    UserStore._write_reference = killing
    home, model, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "store":
        # Store level only (no torch import: fast): overwrite an existing user.
        import numpy as np
        from enrollment.store import EnrollmentRecord, ReferenceRecord

        store = UserStore(home)
        old = store.load_classifier("victim")[0]
        refs = [ReferenceRecord(str(i) * 64, np.full(old.feature_dim, i, np.float32))
                for i in range(5)]
        store.save_enrollment(EnrollmentRecord(
            "victim", old.model_id, old.model_sha256, refs, {"w": np.ones(2)}, {}, 9),
            mode="replace")
    else:
        from enrollment import Verifier

        Verifier(home=home, model=model).enroll("victim", sys.argv[4:], force=(mode == "force"))
    print("not killed")
    """
)


@pytest.mark.parametrize("mode", ["new", "store"])
def test_process_killed_during_enrollment_leaves_store_consistent(
    model_path, images, tmp_path, mode
):
    home = tmp_path / "h"
    before = None
    if mode == "store":
        before = Verifier(home=home, model=model_path).enroll("victim", refs(images, 2)).user
    args = [str(p) for p in refs(images, 1, n=5)]
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(home), str(model_path), mode, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = UserStore(home)
    assert store.integrity_check() == "ok"
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    victim = store.find_user("victim")
    if before is None:
        assert victim is None
    else:
        assert victim == before  # untouched: same references, revision, classifier
        Verifier(home=home, model=model_path).verify("victim", images["w2_5"])
    assert os.path.exists(store.path)
