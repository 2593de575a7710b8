"""Fixtures for the settings tests. What is under test is what the settings make of an
environment when a process starts, so each test starts a real `manage.py` (or Python) process
with exactly the environment it gives: nothing is inherited but PATH, and VAR_DIR points into
the test's own directory, so no test reads or writes the checkout's var/."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

Start = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def start(tmp_path: Path) -> Start:
    """start("manage.py", "check", DEBUG="false", ...) runs a process with that environment."""

    def run(*command: str, **env: str) -> subprocess.CompletedProcess:
        full_env = {
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VAR_DIR": str(tmp_path / "var"),
            **env,
        }
        return subprocess.run(
            [sys.executable, *command], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120
        )

    return run


@pytest.fixture
def production_env(tmp_path: Path, redis_server: str, key_prefix: str) -> dict[str, str]:
    """What a production deployment sets (README, "Running it in production"). The database is
    a SQLite file of the test's own: these tests need a DATABASE_URL and a database that
    answers, not its data. Redis keys (the bus's, the cache's throttle counts) stay in the
    test's namespace, removed afterwards."""
    return {
        "EVENTBUS_KEY_PREFIX": key_prefix,
        "CACHE_KEY_PREFIX": f"{key_prefix}cache",
        "DEBUG": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'production.sqlite3'}",
        "REDIS_URL": redis_server,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "shop.example.com",
        "EMAIL_URL": "smtp+tls://mailer:password@mail.example.com:587",
    }


# Runs in the started process: Django set up from the environment, then plain-http GETs to
# the paths in argv through the whole middleware stack; prints the settings under test and
# what each GET answered.
PROBE = """
import json, sys
import django
django.setup()
from django.conf import settings
from django.test import Client

client = Client(raise_request_exception=False)
answers = {}
for path, headers in json.loads(sys.argv[1]):
    response = client.get(path, headers={"host": "shop.example.com", **headers})
    answers[path + " " + json.dumps(headers)] = {
        "status": response.status_code,
        "location": response.get("Location"),
        "hsts": response.get("Strict-Transport-Security"),
        "body": response.content.decode()[:200],
    }
names = ["SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
         "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER", "SECRET_KEY"]
print(json.dumps({"settings": {n: getattr(settings, n) for n in names}, "answers": answers}))
"""


class Probe:
    def __init__(self, document: dict) -> None:
        self.settings: dict = document["settings"]
        self._answers: dict = document["answers"]

    def get(self, path: str, **headers: str) -> dict:
        return self._answers[path + " " + json.dumps(headers)]


@pytest.fixture
def probe(start: Start) -> Callable[..., Probe]:
    """probe(env, ("/healthz", {}), ...): start a process with `env`, GET each path over plain
    http with those headers, return what it answered and the settings it ran with."""

    def run(env: dict[str, str], *requests: tuple[str, dict[str, str]]) -> Probe:
        result = start("-c", PROBE, json.dumps(list(requests)), **env)
        assert result.returncode == 0, result.stderr[-3000:]
        return Probe(json.loads(result.stdout.strip().splitlines()[-1]))

    return run
