"""Production (DEBUG off) speaks HTTPS only, and says so to Django's deployment check; each
switch keeps Django's name; health checks and metrics stay reachable over plain http; `make
run` (DEBUG on) serves plain http."""

from __future__ import annotations

ONE_YEAR = 365 * 24 * 3600
HEALTH_AND_METRICS = ("/healthz", "/readyz", "/metrics")


def https_settings(probe) -> dict:
    return {name: value for name, value in probe.settings.items() if name != "SECRET_KEY"}


def test_the_deployment_check_finds_nothing_to_warn_about_in_production(start, production_env):
    result = start("manage.py", "check", "--deploy", "--fail-level", "WARNING", **production_env)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr + result.stdout


def test_plain_http_to_the_api_is_redirected_to_https_in_production(probe, production_env):
    answer = probe(production_env, ("/api/orders/", {})).get("/api/orders/")

    assert answer["status"] == 301
    assert answer["location"] == "https://shop.example.com/api/orders/"


def test_health_checks_and_metrics_are_answered_over_plain_http_in_production(probe, production_env):
    answers = probe(production_env, *((path, {}) for path in HEALTH_AND_METRICS))

    assert answers.get("/healthz")["status"] == 200
    assert answers.get("/healthz")["location"] is None
    for path in ("/readyz", "/metrics"):
        assert answers.get(path)["status"] != 301, f"{path} is exempt from the redirect"


def test_behind_a_trusted_tls_proxy_https_requests_are_served_with_hsts(probe, production_env):
    forwarded = {"x-forwarded-proto": "https"}

    answer = probe({**production_env, "TRUST_X_FORWARDED_PROTO": "true"}, ("/api/orders/", forwarded)).get(
        "/api/orders/", **forwarded
    )

    assert answer["status"] == 401, "served (and asks for credentials), not redirected"
    assert answer["hsts"] == f"max-age={ONE_YEAR}; includeSubDomains"


def test_a_client_claiming_https_is_not_believed_unless_the_proxy_is_trusted(probe, production_env):
    forwarded = {"x-forwarded-proto": "https"}

    answer = probe(production_env, ("/api/orders/", forwarded)).get("/api/orders/", **forwarded)

    assert answer["status"] == 301


def test_production_defaults_are_https_only(probe, production_env):
    assert https_settings(probe(production_env)) == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": ONE_YEAR,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": None,
    }


def test_each_https_setting_is_switched_in_the_environment_under_its_django_name(probe, production_env):
    switched = {
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "3600",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "false",
        "SECURE_HSTS_PRELOAD": "true",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "TRUST_X_FORWARDED_PROTO": "true",
    }

    assert https_settings(probe({**production_env, **switched})) == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


def test_debug_as_make_run_sets_it_serves_plain_http(probe, production_env):
    answers = probe({**production_env, "DEBUG": "true"}, ("/api/orders/", {}))

    assert answers.get("/api/orders/")["status"] == 401, "served over http, not redirected"
    assert answers.settings["SESSION_COOKIE_SECURE"] is False
    assert answers.settings["CSRF_COOKIE_SECURE"] is False
    assert answers.settings["SECURE_HSTS_SECONDS"] == 0
