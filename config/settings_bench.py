"""Settings for `make bench`: production's, plus the benchmark's app (the `bench` command).

Production does not install the benchmark; only the process that runs it uses this module. The
processes it measures (web, relay, consumers) run production's settings, started from the
Procfile (bench/fleet.py)."""

from config.settings import *  # noqa: F403

# bench.peers: the Celery peer of the `peers` scenario (its tables are created by the scenario).
INSTALLED_APPS = [*INSTALLED_APPS, "bench", "bench.peers"]  # noqa: F405
