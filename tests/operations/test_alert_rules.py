"""docs/prometheus-alerts.yml loads in Prometheus and its alerts fire when they should:
`promtool check rules` and the unit tests in docs/prometheus-alerts.test.yml. promtool comes
with Debian's `prometheus` package (.ci/run installs it and sets CI_REQUIRE_PROMTOOL=1, so that
CI cannot skip these)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.processes import ROOT

DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI_REQUIRE_PROMTOOL") == "1":
            pytest.fail("CI_REQUIRE_PROMTOOL=1 but promtool is not installed (apt-get install -y prometheus)")
        pytest.skip("promtool is not installed (Debian: apt-get install -y prometheus)")
    return path


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=DOCS, capture_output=True, text=True, timeout=60, check=False)


def test_the_alert_rules_load(promtool):
    result = run(promtool, "check", "rules", "prometheus-alerts.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_pass_their_unit_tests(promtool):
    result = run(promtool, "test", "rules", "prometheus-alerts.test.yml")

    assert result.returncode == 0, result.stdout + result.stderr
