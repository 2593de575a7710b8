#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

BENCH_ELSEWHERE = (
    "the benchmark is not installed in these settings: run `make bench`, "
    "or `DJANGO_SETTINGS_MODULE=config.settings_bench python manage.py bench`"
)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import BaseCommand, ManagementUtility
    from django.db import OperationalError

    class Utility(ManagementUtility):
        def fetch_command(self, subcommand: str) -> BaseCommand:
            # Production's settings leave the benchmark out (config/settings_bench.py adds it).
            if subcommand == "bench" and apps.ready and not apps.is_installed("bench"):
                sys.exit(BENCH_ELSEWHERE)
            return super().fetch_command(subcommand)

    try:
        Utility(sys.argv).execute()
    except ImproperlyConfigured as exc:
        # A setting the user can fix (bad DATABASE_URL, missing SECRET_KEY): one line, no traceback.
        sys.exit(f"configuration error: {' '.join(str(exc).split())}")
    except OperationalError as exc:
        from eventbus.runtime.outage import database_unreachable_message

        sys.exit(database_unreachable_message(exc))
    except Exception as exc:
        from eventbus.redis.transport import TransportUnavailable, get_transport, unreachable_message

        if isinstance(exc, TransportUnavailable):
            sys.exit(unreachable_message(get_transport().url, exc))
        raise


if __name__ == "__main__":
    main()
