"""A browser tab watched for what a person would not see but must not happen: Content-Security-
Policy violations, console errors, uncaught page errors. And signing in, as a person does."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from playwright.sync_api import Page

# Records every securitypolicyviolation into window.__cspViolations, and reports it to the test
# through the binding __reportCspViolation, because the window's list goes with the page when
# the tab moves on. DRF's browsable API swaps in the response page with document.open(), which
# erases the window's listeners (the window, and so the list, stays): the listener is added
# again after each open.
RECORD_VIOLATIONS = """
(() => {
  window.__cspViolations = window.__cspViolations || [];
  const record = (event) => {
    const violation =
      `${event.violatedDirective} blocked ${event.blockedURI || "inline"} at ${event.sourceFile}:${event.lineNumber}`;
    window.__cspViolations.push(violation);
    window.__reportCspViolation(violation);
  };
  window.addEventListener("securitypolicyviolation", record);
  const open = Document.prototype.open;
  Document.prototype.open = function (...args) {
    const opened = open.apply(this, args);
    window.addEventListener("securitypolicyviolation", record);
    return opened;
  };
})();
"""


@dataclass
class Watched:
    """A browser tab, and everything wrong it saw: CSP violations, console errors, page errors."""

    page: Page
    violations: list[str] = field(default_factory=list)  # reported by every page the tab showed
    problems: list[str] = field(default_factory=list)
    checked: bool = False

    def check(self) -> None:
        """Fails on anything wrong seen so far, on this page or the ones before it."""
        self.checked = True
        assert self.page.evaluate("window.__cspViolations") == [], "Content-Security-Policy violations on this page"
        assert self.violations == [], "Content-Security-Policy violations"
        assert self.problems == [], "console or page errors"


def sign_in(tab: Watched, user: AbstractBaseUser, *, at: str) -> None:
    """Signs in through a login page's form (DRF's /api-auth/login/ or the admin's), with the
    factories' password."""
    tab.page.goto(at)
    tab.page.fill("#id_username", user.get_username())
    tab.page.fill("#id_password", "secret-password")
    with tab.page.expect_navigation():
        tab.page.click("input[type=submit]")
