"""A machine without chromium never passes for a green browser suite: the browser tests are
skipped with the reason in the summary and a banner, or, with CI_REQUIRE_BROWSER=1, fail. Run as
a separate pytest with CHROMIUM pointing nowhere (tests/browser/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.processes import ROOT

A_BROWSER_TEST = "tests/browser/test_pages_in_chromium.py::test_customer_finds_the_docs_from_the_api_root_and_swagger_ui_shows_the_operations"  # noqa: E501


def run_browser_test(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CI_REQUIRE_BROWSER")}
    # Its own SQLite test database: this run's PostgreSQL one is in use by this very session.
    environ.update(CHROMIUM=str(tmp_path / "no-chromium"), TEST_SQLITE_NAME=str(tmp_path / "test.sqlite3"), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", A_BROWSER_TEST],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_without_chromium_the_browser_tests_are_skipped_with_the_reason_and_a_banner(tmp_path):
    result = run_browser_test(tmp_path)

    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert f"SKIPPED [1] {A_BROWSER_TEST.split('::')[0]}" in result.stdout
    assert "1 BROWSER TESTS SKIPPED" in result.stdout
    assert f"{tmp_path / 'no-chromium'} is missing: apt-get install -y chromium" in result.stdout


def test_without_chromium_and_with_ci_require_browser_the_browser_tests_fail(tmp_path):
    result = run_browser_test(tmp_path, CI_REQUIRE_BROWSER="1")

    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout
    assert "CI_REQUIRE_BROWSER=1: browser tests need Debian's chromium" in result.stdout
