"""Browser tests: Debian's Chromium, driven by Playwright's sync API, against pytest-django's
live server (a real HTTP server in this process, on the test database and Redis).

Playwright downloads no browser here: it launches Debian's chromium (CHROMIUM, default
/usr/bin/chromium). Without it, every test that drives the browser is skipped with the reason in
the summary and a banner at the end of the run, so that a machine without it is never taken for a
green browser suite; with CI_REQUIRE_BROWSER=1 (CI) each of them fails instead.

Every page a test opens is watched: a Content-Security-Policy violation (recorded in the page
by an init script), a console error or an uncaught page error fails the test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, expect, sync_playwright
from pytest_django.live_server_helper import LiveServer

from tests.browser.watch import RECORD_VIOLATIONS, Watched

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
MISSING = (
    None
    if Path(CHROMIUM).is_file()
    else f"browser tests need Debian's chromium, and {CHROMIUM} is missing: apt-get install -y chromium"
)
REQUIRED = os.environ.get("CI_REQUIRE_BROWSER") == "1"
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if MISSING and not REQUIRED:
        for item in items:
            if HERE in item.path.parents and "browser" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.skip(reason=MISSING))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if MISSING and MISSING in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} BROWSER TESTS SKIPPED", yellow=True, bold=True)
        terminalreporter.write_line(f"{MISSING} (CI_REQUIRE_BROWSER=1 makes this a failure)", yellow=True, bold=True)


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Long enough for a loaded 2-core machine, short enough that a page that never comes fails fast.
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright's sync API keeps its asyncio loop registered as running in this thread, which
    # Django takes for a coroutine calling the ORM. None does: the loop only runs while a
    # Playwright call waits, and the tests' factories and assertions run between those calls.
    # So the check is lifted for this module's tests alone.
    if MISSING:  # only when CI_REQUIRE_BROWSER=1: the tests were skipped otherwise
        pytest.fail(f"CI_REQUIRE_BROWSER=1: {MISSING}", pytrace=False)
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def tab(browser: Browser, live_server: LiveServer) -> Iterator[Watched]:
    """A fresh browser context (no cookies) on the live server, watched for CSP violations,
    console errors and page errors. A test ends with tab.check(); one that does not is checked
    as it is torn down."""
    context = browser.new_context(base_url=str(live_server))
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = Watched(page)
    context.expose_binding("__reportCspViolation", lambda source, violation: watched.violations.append(violation))
    context.add_init_script(RECORD_VIOLATIONS)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.problems.append(f"console error on {page.url}: {message.text} ({message.location['url']})")

    def on_page_error(error: Error) -> None:
        watched.problems.append(f"page error on {page.url}: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    try:
        yield watched
        if not watched.checked:
            watched.check()
    finally:
        context.close()
