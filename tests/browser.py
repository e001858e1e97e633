"""The real-browser harness: Playwright driving Debian's Chromium.

Tests that use the `page` fixture get a headless Chromium page; `admin_page`
is one already logged in to the admin of the live test server. Without
Chromium they skip, unless REQUIRE_BROWSER=1 (as in .ci/run) makes that an error.
"""

import os
import shutil

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        # A fresh machine without a browser still gets a green run; CI sets
        # REQUIRE_BROWSER=1 after installing Chromium so these tests never
        # silently stop running there.
        reason = "Chromium is not installed (apt-get install -y chromium runs these tests)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django refuses
    # database access from such a thread unless told it is fine (it is: the
    # loop only waits for the browser).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def admin_user_password(transactional_db, django_user_model):
    password = "correct-horse-battery"
    django_user_model.objects.create_superuser("boss", "boss@example.com", password)
    return "boss", password


@pytest.fixture
def admin_page(page, live_server, admin_user_password):
    username, password = admin_user_password
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page
