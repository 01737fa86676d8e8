"""The try-it page in a real headless browser (Debian's chromium + chromedriver)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

CHROMIUM = os.environ.get("MFREC_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MFREC_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def live_server(small_model_path, tmp_path):
    """The app under uvicorn on a free loopback port, in a thread of this process."""
    import uvicorn

    from mfrec.serve.app import ServeConfig, create_app

    app = create_app(ServeConfig(str(small_model_path), f"sqlite:///{tmp_path / 'f.sqlite'}"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser(tmp_path):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        message = (
            f"browser test needs {' and '.join(missing)} (apt install chromium chromium-driver)"
        )
        if IN_CI:
            pytest.fail(message + " -- required when CI=true")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.mark.slow
def test_rate_three_items_and_see_ten_recommendations(live_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(live_server + "/")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert "BiasedMF" in browser.find_element(By.ID, "model").text

    search = browser.find_element(By.ID, "search")
    for item, rating in (("5", "5"), ("17", "4"), ("40", "1")):
        search.clear()
        search.send_keys(f"Item {item}")
        wait.until(
            lambda d, q=f"Item {item}": (
                d.find_element(By.ID, "results").get_attribute("data-query") == q
            )
        )
        line = browser.find_element(By.CSS_SELECTOR, f'#results li[data-item="{item}"]')
        line.find_element(By.CSS_SELECTOR, f'button.rate[data-value="{rating}"]').click()
    wait.until(lambda d: "from 3 rating(s)" in d.find_element(By.ID, "recs-status").text)

    recs = browser.find_elements(By.CSS_SELECTOR, "#recs li")
    assert len(recs) == 10
    rated = {"5", "17", "40"}
    titles = [li.find_element(By.CLASS_NAME, "title").text for li in recs]
    for li, title in zip(recs, titles, strict=True):
        item = li.get_attribute("data-item")
        assert item not in rated
        # the title's markup shows as text: it was escaped, not parsed
        assert title == f"Item {item} <b>bold</b> & <script>x()</script>"
    assert browser.find_elements(By.CSS_SELECTOR, "#recs b, #recs script") == []
    # the page's list is the API's answer for the same ratings
    import httpx

    expected = httpx.post(
        live_server + "/recommendations", json={"ratings": {"5": 5, "17": 4, "40": 1}, "n": 10}
    ).json()
    assert [li.get_attribute("data-item") for li in recs] == [
        str(e["item"]) for e in expected["items"]
    ]
    # similar items followed the last rating
    wait.until(lambda d: "Similar to Item 40" in d.find_element(By.ID, "similar-heading").text)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#similar li")) == 10
    assert browser.find_element(By.ID, "error").text == ""
