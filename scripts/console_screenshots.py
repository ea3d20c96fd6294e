"""Screenshots of every screen of the operator console (for the README).

Starts the service on a loopback port with the shipped model and a throw-away
store of synthetic writers (:mod:`sigver.synth`), drives the page in headless
Chromium and writes ``console-*.png``::

    PYTHONPATH=. python scripts/console_screenshots.py            # -> scripts/figures/

Needs Debian's ``chromium`` and ``chromium-driver`` packages and selenium
(dev extra). The scores shown are real: the shipped model on synthetic
signatures, at the model's calibrated global threshold.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from enrollment import Verifier
from enrollment.config import Settings
from enrollment.service import create_app
from enrollment.testing import (
    encode_png,
    headless_chromium,
    serve_in_thread,
    write_synthetic_writer,
)

logger = logging.getLogger("console_screenshots")

USERS = ("a.jansen", "j.devries", "m.bakker", "p.visser")


def _wait(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _shot(driver, path: Path, width: int) -> None:
    # Grow the window to the page so that the screenshot shows the whole screen.
    driver.set_window_size(width, 600)
    for _ in range(5):
        missing = driver.execute_script(
            "return document.documentElement.scrollHeight - window.innerHeight"
        )
        if missing <= 0:
            break
        driver.set_window_size(width, driver.get_window_size()["height"] + int(missing))
    driver.save_screenshot(str(path))
    logger.info("wrote %s", path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "figures")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sigver-console-"))
    verifier = Verifier(home=work / "home", settings=Settings())
    _, key = verifier.store.create_api_key("operator")
    files = {
        user: write_synthetic_writer(work / user, w, n_references=6, n_genuine=1, n_forgeries=1)
        for w, user in enumerate(USERS)
    }
    for user in USERS[:3]:
        verifier.enroll(user, files[user]["references"], store_images=True)
    verifier.set_threshold("j.devries", 0.5)
    blank = work / "scan-blank.png"
    blank.write_bytes(encode_png(np.full((300, 600), 250, np.uint8)))
    junk = work / "notes.txt.png"
    junk.write_bytes(b"not an image")

    by_id = By.ID
    with serve_in_thread(create_app(verifier)) as url:
        driver = headless_chromium(width=args.width, height=800)
        try:
            driver.get(url + "/")
            _wait(driver, lambda d: d.find_element(by_id, "signin").is_displayed())
            box = driver.find_element(by_id, "api-key")
            box.send_keys("sv_000000000000_" + "x" * 43)
            box.submit()
            _wait(driver, lambda d: "refused" in d.find_element(by_id, "signin-error").text)
            _shot(driver, args.out / "console-signin.png", args.width)

            box.clear()
            box.send_keys(key)
            box.submit()
            _wait(driver, lambda d: d.find_element(by_id, "tabs").is_displayed())

            def tab(name: str) -> None:
                driver.find_element(By.CSS_SELECTOR, f'#tabs button[data-tab="{name}"]').click()
                _wait(driver, lambda d: d.find_element(by_id, name).is_displayed())

            tab("enroll")
            driver.find_element(by_id, "enroll-user").send_keys(USERS[3])
            paths = [*files[USERS[3]]["references"], blank, junk]
            driver.find_element(by_id, "enroll-files").send_keys("\n".join(map(str, paths)))
            _wait(driver, lambda d: "usable" in d.find_element(by_id, "enroll-check").text)
            _shot(driver, args.out / "console-enroll.png", args.width)
            driver.find_element(by_id, "enroll-submit").click()
            _wait(driver, lambda d: "Enrolled" in d.find_element(by_id, "enroll-status").text)
            _shot(driver, args.out / "console-enrolled.png", args.width)

            for kind, name in (("genuine", "accept"), ("skilled", "reject")):
                tab("verify")
                Select(driver.find_element(by_id, "verify-user")).select_by_value(USERS[0])
                path = files[USERS[0]][kind][0]
                driver.find_element(by_id, "verify-file").send_keys(str(path))
                _wait(driver, lambda d: "readable" in d.find_element(by_id, "verify-check").text)
                driver.find_element(by_id, "verify-submit").click()
                _wait(
                    driver,
                    lambda d, p=path: p.name in d.find_element(by_id, "verify-decision").text,
                )
                _shot(driver, args.out / f"console-verify-{name}.png", args.width)
            _shot(driver, args.out / "console-verify-narrow.png", 420)
            driver.set_window_size(args.width, 800)

            tab("users")
            driver.find_element(By.CSS_SELECTOR, "button[aria-label='Manage j.devries']").click()
            _wait(driver, lambda d: d.find_element(by_id, "user-detail").is_displayed())
            _shot(driver, args.out / "console-users.png", args.width)
        finally:
            driver.quit()
    print(f"screenshots in {args.out} (work files: {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
