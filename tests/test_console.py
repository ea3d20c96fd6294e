"""Operator console: its API endpoints (TestClient) and the page in headless Chromium.

The browser tests start one real uvicorn server (shipped model, synthetic
signatures) and one Chromium session for the whole module; they skip with the
reason when Chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import base64
import json
import os

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from enrollment import Verifier
from enrollment.config import Settings
from enrollment.service import create_app
from enrollment.testing import (
    chromium_paths,
    draw_signature,
    encode_png,
    headless_chromium,
    serve_in_thread,
    write_synthetic_writer,
)
from sigver.preprocessing import preprocess_signature, read_image

# ------------------------------------------------------------------ API (fast)


@pytest.fixture
def env(model_path, tmp_path):
    settings = Settings(max_file_bytes=200_000, max_request_bytes=2_000_000, max_files=8)
    verifier = Verifier(home=tmp_path / "home", model=model_path, settings=settings)
    _, key = verifier.store.create_api_key("tests")
    client = TestClient(create_app(verifier))
    client.headers["X-API-Key"] = key
    return client, verifier


def _files(named, field="images"):
    return [(field, (name, blob, "image/png")) for name, blob in named]


def _decode(b64: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_UNCHANGED)


def test_console_page_is_served_with_a_strict_policy(env):
    client, _ = env
    anon = TestClient(client.app)
    r = anon.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/console/"
    page = anon.get("/console/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert 'src="app.js"' in page.text and "http" not in page.text.split("<body>")[0]
    assert anon.get("/console/app.js").headers["content-type"].startswith("text/javascript")
    assert anon.get("/console/style.css").status_code == 200
    for bad in ("../service.py", "console_api.py", "nope.js", "%2e%2e/errors.py"):
        assert anon.get(f"/console/{bad}").status_code == 404, bad
    # nothing in the assets reaches out of the server (offline, no CDN)
    for name in ("index.html", "app.js", "style.css"):
        text = anon.get(f"/console/{name}").text
        assert "http://" not in text and "https://" not in text, name


def test_preprocess_returns_what_enrollment_sees_and_per_file_errors(env):
    client, verifier = env
    good = encode_png(draw_signature(1, 0))
    blank = encode_png(np.full((80, 120), 255, np.uint8))
    big = encode_png(np.random.default_rng(0).integers(0, 256, (600, 600), dtype=np.uint8))
    assert len(big) > verifier.settings.max_file_bytes
    named = [("a.png", good), ("blank.png", blank), ("junk.png", b"GIF89a nope"), ("big.png", big)]
    r = client.post("/v1/preprocess", files=_files([*named, ("again.png", good)]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["ok"], body["failed"], body["min_references"]) == (2, 3, 4)
    results = {x["filename"]: x for x in body["results"]}
    assert [x["filename"] for x in body["results"]] == [n for n, _ in named] + ["again.png"]

    config = verifier.extractor.preprocess_config
    expected = preprocess_signature(read_image(good), config.canvas_size, config.img_size)
    thumb = _decode(results["a.png"]["png_base64"])
    assert thumb.shape == config.img_size == (results["a.png"]["height"], results["a.png"]["width"])
    np.testing.assert_array_equal(thumb, 255 - expected)  # ink dark on white for display
    assert results["a.png"]["sha256"] == results["again.png"]["sha256"]

    assert results["blank.png"]["ok"] is False and "blank" in results["blank.png"]["reason"]
    assert results["junk.png"]["error"] == "image_error" and results["junk.png"]["reason"]
    assert results["big.png"]["error"] == "payload_too_large"
    assert "200000" in results["big.png"]["reason"]
    assert verifier.list_users() == []  # nothing stored


def test_preprocess_needs_a_key_and_bounds_the_batch(env):
    client, _ = env
    anon = TestClient(client.app)
    one = _files([("a.png", encode_png(draw_signature(1, 0)))])
    assert anon.post("/v1/preprocess", files=one).status_code == 401
    assert anon.post("/v1/preprocess", files=one, headers={"X-API-Key": "x"}).status_code == 403
    many = _files([(f"{i}.png", b"x") for i in range(9)])
    assert client.post("/v1/preprocess", files=many).status_code == 413
    assert client.post("/v1/preprocess").status_code == 422


def test_references_and_threshold_endpoints(env):
    client, verifier = env
    refs = [encode_png(draw_signature(1, s)) for s in range(4)]
    named = [(f"r{i}.png", b) for i, b in enumerate(refs)]
    r = client.post("/v1/users/kept/enroll", files=_files(named), data={"store_images": "true"})
    assert r.status_code == 201, r.text
    client.post("/v1/users/bare/enroll", files=_files(named))

    kept = client.get("/v1/users/kept/references").json()
    assert (kept["n_references"], kept["stored"]) == (4, 4)
    config = verifier.extractor.preprocess_config
    first = preprocess_signature(read_image(refs[0]), config.canvas_size, config.img_size)
    np.testing.assert_array_equal(_decode(kept["references"][0]["png_base64"]), 255 - first)
    bare = client.get("/v1/users/bare/references").json()
    assert (bare["n_references"], bare["stored"], bare["references"]) == (4, 0, [])
    assert client.get("/v1/users/ghost/references").status_code == 404
    assert client.get("/v1/users/..x/references").status_code == 422
    assert TestClient(client.app).get("/v1/users/kept/references").status_code == 401

    r = client.put("/v1/users/kept/threshold", json={"threshold": 0.75})
    assert r.status_code == 200 and r.json()["threshold"] == 0.75
    assert r.json()["effective_threshold"] == 0.75
    q = _files([("q.png", encode_png(draw_signature(1, 5)))], field="image")
    result = client.post("/v1/users/kept/verify", files=q).json()["results"][0]
    assert result["threshold"] == 0.75 and result["accepted"] == (result["score"] >= 0.75)
    r = client.put("/v1/users/kept/threshold", json={"threshold": None})
    assert r.json()["threshold"] is None
    assert r.json()["effective_threshold"] == verifier.default_threshold
    assert client.put("/v1/users/kept/threshold", json={}).status_code == 422
    assert client.put("/v1/users/kept/threshold", json={"threshold": "high"}).status_code == 422
    r = client.put("/v1/users/kept/threshold", content='{"threshold": Infinity}')
    assert r.status_code in (400, 422)
    assert client.put("/v1/users/ghost/threshold", json={"threshold": 1}).status_code == 404
    anon = TestClient(client.app)
    assert anon.put("/v1/users/kept/threshold", json={"threshold": 1}).status_code == 401
    paths = anon.get("/openapi.json").json()["paths"]
    for path in ("/v1/preprocess", "/v1/users/{user_id}/references"):
        assert path in paths
    assert "put" in paths["/v1/users/{user_id}/threshold"]


# -------------------------------------------------------------- in the browser

BROWSER, DRIVER, WHY_NOT = chromium_paths()
# .ci/run sets SIGVER_REQUIRE_BROWSER=1 so that CI fails instead of skipping.
REQUIRED = os.environ.get("SIGVER_REQUIRE_BROWSER", "") not in ("", "0")
browser_only = pytest.mark.skipif(
    bool(WHY_NOT) and not REQUIRED, reason=f"browser tests skipped: {WHY_NOT}"
)


def test_browser_is_present_when_required():
    if not REQUIRED:
        pytest.skip("SIGVER_REQUIRE_BROWSER is not set")
    assert not WHY_NOT, WHY_NOT


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A server with the shipped model, user ``bob`` enrolled (images kept), and files."""
    if not REQUIRED:
        pytest.importorskip("selenium", reason="browser tests need selenium (dev extra)")
    from sigver.features import default_model_path

    if not default_model_path().is_file():
        pytest.skip(f"shipped model missing: {default_model_path()}")
    root = tmp_path_factory.mktemp("console")
    settings = Settings(max_file_bytes=300_000, max_request_bytes=4_000_000, max_files=16)
    verifier = Verifier(home=root / "home", settings=settings)
    _, key = verifier.store.create_api_key("console-tests")
    alice = write_synthetic_writer(root / "alice", 0, n_references=5, n_genuine=1, n_forgeries=1)
    bob = write_synthetic_writer(root / "bob", 1, n_references=5, n_genuine=1, n_forgeries=1)
    verifier.enroll("bob", bob["references"], store_images=True)
    bad = {
        "blank": root / "blank.png",
        "junk": root / "notes.png",
        "big": root / "big.png",
    }
    bad["blank"].write_bytes(encode_png(np.full((200, 400), 255, np.uint8)))
    bad["junk"].write_bytes(b"this is not an image")
    noise = np.random.default_rng(1).integers(0, 256, (700, 700), dtype=np.uint8)
    bad["big"].write_bytes(encode_png(noise))
    assert bad["big"].stat().st_size > settings.max_file_bytes
    expected = {
        name: verifier.verify("bob", bob[kind][0])
        for name, kind in (("genuine", "genuine"), ("forgery", "skilled"))
    }
    with serve_in_thread(create_app(verifier)) as url:
        driver = headless_chromium(width=1280, height=1000)
        driver.implicitly_wait(0)
        try:
            yield {
                "url": url,
                "key": key,
                "driver": driver,
                "verifier": verifier,
                "alice": alice,
                "bob": bob,
                "bad": bad,
                "expected": expected,
            }
        finally:
            driver.quit()


def _wait(driver, condition, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _by_id(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def _text_in(element_id, text):
    def check(driver):
        node = _by_id(driver, element_id)
        return node.text if text in node.text else False

    return check


def _visible(element_id):
    return lambda driver: _by_id(driver, element_id).is_displayed()


def _sign_in(site, key=None):
    driver = site["driver"]
    if not driver.current_url.startswith(site["url"]):
        driver.get(site["url"] + "/console/")
    _wait(driver, lambda d: _by_id(d, "signin").is_displayed() or _by_id(d, "tabs").is_displayed())
    if not _by_id(driver, "signin").is_displayed():
        return
    box = _by_id(driver, "api-key")
    box.clear()
    box.send_keys(key or site["key"])
    _by_id(driver, "signin-form").submit()
    _wait(driver, _visible("tabs"))


def _tab(site, name):
    from selenium.webdriver.common.by import By

    _sign_in(site)
    site["driver"].find_element(By.CSS_SELECTOR, f'#tabs button[data-tab="{name}"]').click()
    _wait(site["driver"], _visible(name))


@browser_only
def test_wrong_key_is_refused_then_sign_in_keeps_the_key_in_the_session_only(site):
    from selenium.webdriver.common.keys import Keys

    driver = site["driver"]
    driver.get(site["url"] + "/")
    assert driver.current_url.endswith("/console/")
    _wait(driver, _visible("signin"))
    box = _by_id(driver, "api-key")
    assert box.get_attribute("type") == "password"
    assert driver.switch_to.active_element == box  # keyboard users start in the key field
    box.send_keys(site["key"][:-3] + "zzz")
    box.submit()
    _wait(driver, _text_in("signin-error", "refused"))
    assert not _by_id(driver, "tabs").is_displayed()
    assert driver.execute_script("return sessionStorage.length") == 0

    box.clear()
    box.send_keys(site["key"] + Keys.ENTER)  # the keyboard signs in too
    _wait(driver, _visible("tabs"))
    assert driver.execute_script("return sessionStorage.getItem('sigver.apiKey')") == site["key"]
    assert driver.execute_script("return localStorage.length") == 0
    assert site["key"] not in driver.current_url
    _wait(driver, _text_in("service-info", site["verifier"].model_id))
    # a reload stays signed in (same tab session)
    driver.refresh()
    _wait(driver, _visible("tabs"))
    assert not _by_id(driver, "signin").is_displayed()


@browser_only
def test_enroll_from_files_shows_thumbnails_and_per_file_errors(site):
    from selenium.webdriver.common.by import By

    driver = site["driver"]
    _tab(site, "enroll")
    _by_id(driver, "enroll-user").send_keys("alice")
    paths = [*site["alice"]["references"], *site["bad"].values()]
    _by_id(driver, "enroll-files").send_keys("\n".join(str(p) for p in paths))
    _wait(driver, _text_in("enroll-check", "5 usable"))
    assert "3 refused" in _by_id(driver, "enroll-check").text
    items = driver.find_elements(By.CSS_SELECTOR, "#enroll-list li")
    assert len(items) == 8
    by_name = {li.get_attribute("data-file"): li for li in items}
    for ref in site["alice"]["references"]:
        img = by_name[ref.name].find_element(By.TAG_NAME, "img")
        assert img.get_attribute("src").startswith("data:image/png;base64,")
        assert driver.execute_script("return arguments[0].naturalWidth", img) == 242
    assert "blank image" in by_name["blank.png"].text
    assert by_name["notes.png"].find_elements(By.TAG_NAME, "img") == []
    assert by_name["notes.png"].text.strip() != "notes.png"  # carries a reason
    assert "300000" in by_name["big.png"].text
    assert site["verifier"].store.find_user("alice") is None  # checked, not stored

    submit = _by_id(driver, "enroll-submit")
    assert submit.text == "Enroll 5 signature(s)" and submit.is_enabled()
    submit.click()
    _wait(driver, _text_in("enroll-status", "Enrolled alice"))
    assert "5 references (5 new)" in _by_id(driver, "enroll-status").text
    user = site["verifier"].store.get_user("alice")
    assert (user.n_references, user.stored_images) == (5, 5)

    # enrolling again without add/replace is refused with the service's reason
    _by_id(driver, "enroll-files").send_keys(str(site["alice"]["references"][0]))
    _wait(driver, _text_in("enroll-check", "1 usable"))
    _by_id(driver, "enroll-submit").click()
    _wait(driver, _text_in("enroll-status", "already enrolled"))


def _verify(site, user, path):
    from selenium.webdriver.support.ui import Select

    driver = site["driver"]
    _tab(site, "verify")
    Select(_by_id(driver, "verify-user")).select_by_value(user)
    _by_id(driver, "verify-file").send_keys(str(path))
    _wait(driver, _text_in("verify-check", "readable"))
    # Blank the previous decision first: it may name the same file, and the wait
    # below must see this request's answer, not the last one's.
    driver.execute_script("document.getElementById('verify-decision').textContent = ''")
    _by_id(driver, "verify-submit").click()
    _wait(driver, _visible("verify-result"))
    _wait(driver, _text_in("verify-decision", path.name))
    return _by_id(driver, "verify-decision").text


@browser_only
@pytest.mark.parametrize("kind", ["genuine", "forgery"])
def test_verify_shows_decision_gauge_and_references(site, kind):
    from selenium.webdriver.common.by import By

    driver = site["driver"]
    path = site["bob"]["genuine" if kind == "genuine" else "skilled"][0]
    expected = site["expected"][kind]
    # the synthetic genuine passes and the forgery fails at the model's threshold
    assert expected.accepted == (kind == "genuine")
    decision = _verify(site, "bob", path)
    assert decision.startswith("Accepted" if expected.accepted else "Rejected")
    gauge = _by_id(driver, "verify-gauge")
    assert float(gauge.get_attribute("aria-valuenow")) == pytest.approx(expected.score, abs=1e-3)
    assert f"threshold {expected.threshold:.3f}" in _by_id(driver, "verify-gauge-label").text
    facts = _by_id(driver, "verify-facts").text
    assert f"{expected.score:.3f}" in facts and "model default" in facts
    assert expected.image_sha256 in facts
    refs = driver.find_elements(By.CSS_SELECTOR, "#verify-refs img")
    assert len(refs) == 5
    questioned = _by_id(driver, "verify-questioned")
    assert driver.execute_script("return arguments[0].naturalWidth", questioned) == 242


@browser_only
def test_verify_reports_a_bad_file_before_sending_it(site):
    driver = site["driver"]
    _tab(site, "verify")
    _by_id(driver, "verify-file").send_keys(str(site["bad"]["blank"]))
    _wait(driver, _text_in("verify-check", "blank.png:"))
    assert not _by_id(driver, "verify-submit").is_enabled()
    assert not _by_id(driver, "verify-result").is_displayed()


@browser_only
def test_users_search_threshold_and_remove(site):
    from selenium.webdriver.common.by import By

    driver = site["driver"]
    site["verifier"].enroll("carol", site["alice"]["references"], force=True)
    n_users = len(site["verifier"].list_users())
    _tab(site, "users")
    _by_id(driver, "users-refresh").click()
    _wait(driver, _text_in("users-count", f"{n_users} enrolled users"))
    _by_id(driver, "users-search").send_keys("bo")
    _wait(driver, _text_in("users-count", f"1 of {n_users}"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#users-table tbody tr")
    assert [r.get_attribute("data-user") for r in rows] == ["bob"]
    rows[0].find_element(By.CSS_SELECTOR, "button[aria-label='Manage bob']").click()
    _wait(driver, _text_in("user-detail-title", "bob"))
    # The service's real audit trail feeds the history panel: bob's enrollment is in it.
    _wait(driver, _visible("history"))
    actions = [
        c.text
        for c in driver.find_elements(By.CSS_SELECTOR, "#history-table tbody td:nth-child(2)")
    ]
    assert "enroll" in actions

    box = _by_id(driver, "threshold-value")
    box.clear()
    box.send_keys("5")
    _by_id(driver, "threshold-form").submit()
    _wait(driver, _text_in("users-status", "set to 5.000"))
    assert site["verifier"].store.get_user("bob").threshold == 5.0
    _wait(driver, _text_in("users-table", "5.000 (override)"))
    # the override applies at once: bob's genuine signature now scores below it
    assert _verify(site, "bob", site["bob"]["genuine"][0]).startswith("Rejected")
    assert "user override" in _by_id(driver, "verify-facts").text

    _tab(site, "users")
    _by_id(driver, "users-search").clear()
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Manage bob']").click()
    _wait(driver, _text_in("user-detail-title", "bob"))
    _by_id(driver, "threshold-clear").click()
    _wait(driver, _text_in("users-status", "default threshold"))
    assert site["verifier"].store.get_user("bob").threshold is None

    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Manage carol']").click()
    _wait(driver, _text_in("user-detail-title", "carol"))
    _by_id(driver, "user-remove").click()
    driver.switch_to.alert.dismiss()  # cancelling keeps the user
    assert site["verifier"].store.find_user("carol") is not None
    _by_id(driver, "user-remove").click()
    driver.switch_to.alert.accept()
    _wait(driver, _text_in("users-status", "Removed carol"))
    assert site["verifier"].store.find_user("carol") is None
    _wait(driver, _text_in("users-count", f"{n_users - 1} enrolled users"))


@browser_only
def test_history_panel_uses_the_audit_endpoint_when_it_answers(site):
    from selenium.webdriver.common.by import By

    driver = site["driver"]
    _sign_in(site)
    event = {
        "time": "2026-12-01T10:00:00Z",
        "tenant": "t",
        "key_id": "0123456789ab",
        "user_id": "bob",
        "action": "verify",
        "decision": "reject",
        "score": -0.25,
        "operating_point": "FAR=1%",
        "model_id": "m",
        "image_sha256": "ab" * 32,
    }
    # A scripted audit answer, to check every column and that the key goes in the header.
    driver.execute_script(
        """
        const events = JSON.parse(arguments[0]);
        window.__audit = [];
        const real = window.fetch;
        window.fetch = (url, opts) => {
          if (String(url).startsWith('/v1/audit')) {
            window.__audit.push({url: String(url), key: opts.headers['X-API-Key']});
            return Promise.resolve(new Response(JSON.stringify({events}),
              {status: 200, headers: {'Content-Type': 'application/json'}}));
          }
          return real(url, opts);
        };
        """,
        json.dumps([event]),
    )
    _by_id(driver, "signout").click()
    _sign_in(site)
    _tab(site, "users")
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Manage bob']").click()
    _wait(driver, _visible("history"))
    cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#history-table tbody td")]
    assert cells == [event["time"], "verify", "reject", "-0.250", "FAR=1%", "0123456789ab"]
    calls = driver.execute_script("return window.__audit")
    assert any("user_id=bob" in c["url"] and "limit=" in c["url"] for c in calls)
    assert all(c["key"] == site["key"] for c in calls)


@browser_only
def test_sections_are_reachable_with_the_keyboard(site):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = site["driver"]
    _sign_in(site)
    driver.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="users"]').send_keys(Keys.ENTER)
    _wait(driver, _visible("users"))
    # focus moves to the section's heading, and Tab continues into the section
    assert driver.switch_to.active_element.get_attribute("id") == "users-title"
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert driver.switch_to.active_element.get_attribute("id") == "users-search"
    current = driver.find_element(By.CSS_SELECTOR, "#tabs button[aria-current=page]")
    assert current.get_attribute("data-tab") == "users"


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_contrast_helper_matches_the_wcag_definition():
    assert _contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert _contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # known AA miss


def test_console_text_colours_meet_wcag_aa():
    import re
    from importlib import resources

    css = resources.files("enrollment").joinpath("console", "style.css").read_text()
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6});", css))
    pairs = [
        ("ink", "paper"),
        ("ink", "page"),
        ("muted", "paper"),
        ("muted", "page"),
        ("accent", "paper"),
        ("accent-ink", "accent"),
        ("ok", "ok-bg"),
        ("bad", "bad-bg"),
        ("bad", "paper"),
    ]
    for fg, bg in pairs:
        ratio = _contrast(colours[fg], colours[bg])
        assert ratio >= 4.5, (fg, bg, round(ratio, 2))
    disabled = re.search(r"button:disabled \{[^}]*background: (#\w{6}); color: (#\w{6})", css)
    assert disabled and _contrast(disabled.group(2), disabled.group(1)) >= 4.5


@browser_only
def test_files_dropped_on_the_enroll_zone_are_checked(site):
    from selenium.webdriver.common.by import By

    driver = site["driver"]
    _tab(site, "enroll")
    _by_id(driver, "enroll-clear").click()
    blobs = {
        p.name: base64.b64encode(p.read_bytes()).decode() for p in site["alice"]["references"][:2]
    }
    blobs["blank.png"] = base64.b64encode(site["bad"]["blank"].read_bytes()).decode()
    # A real drag from the desktop cannot be scripted; dispatch the same drop event
    # the browser would, carrying File objects.
    driver.execute_script(
        """
        const transfer = new DataTransfer();
        for (const [name, b64] of Object.entries(JSON.parse(arguments[0]))) {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          transfer.items.add(new File([bytes], name, {type: 'image/png'}));
        }
        const zone = document.getElementById('enroll-drop');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
        """,
        json.dumps(blobs),
    )
    _wait(driver, _text_in("enroll-check", "2 usable"))
    assert "1 refused" in _by_id(driver, "enroll-check").text
    names = [
        li.get_attribute("data-file")
        for li in driver.find_elements(By.CSS_SELECTOR, "#enroll-list li")
    ]
    assert names == list(blobs)
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Remove blank.png']").click()
    _wait(driver, lambda d: "refused" not in _by_id(d, "enroll-check").text)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#enroll-list li")) == 2


@browser_only
def test_a_key_revoked_mid_session_returns_to_sign_in(site):
    driver = site["driver"]
    _sign_in(site)
    _by_id(driver, "signout").click()
    _, other = site["verifier"].store.create_api_key("short-lived")
    _sign_in(site, key=other)
    _tab(site, "users")
    site["verifier"].store.revoke_api_key("short-lived")
    _by_id(driver, "users-refresh").click()
    _wait(driver, _visible("signin"))
    assert "refused" in _by_id(driver, "signin-error").text
    assert driver.execute_script("return sessionStorage.length") == 0
    assert not _by_id(driver, "users").is_displayed()


@browser_only
def test_verify_shows_the_operating_point_when_the_result_has_one(site):
    driver = site["driver"]
    _sign_in(site)
    # Named operating points come with issue 10; add the field to the real answer.
    driver.execute_script(
        """
        const real = window.__realFetch || window.fetch;
        window.__realFetch = real;
        window.fetch = async (url, opts) => {
          const response = await real(url, opts);
          if (!String(url).endsWith('/verify')) return response;
          const body = await response.json();
          body.results[0].operating_point = 'FAR=0.1%';
          body.results[0].calibrated_references = body.results[0].references + 2;
          return new Response(JSON.stringify(body),
            {status: response.status, headers: {'Content-Type': 'application/json'}});
        };
        """
    )
    _verify(site, "bob", site["bob"]["genuine"][0])
    facts = _by_id(driver, "verify-facts").text
    assert "Operating point" in facts and "FAR=0.1%" in facts
    # The user's reference count, and a warning when the point was calibrated with another.
    assert "References" in facts and "its error rates may differ" in facts
    driver.execute_script("window.fetch = window.__realFetch")
