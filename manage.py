#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A setting the user can fix (bad DATABASE_URL, missing SECRET_KEY): one line, no traceback.
        sys.exit(f"configuration error: {' '.join(str(exc).split())}")
    except OperationalError as exc:
        from eventbus.outage import database_unreachable_message

        sys.exit(database_unreachable_message(exc))
    except Exception as exc:
        from eventbus.transport import TransportUnavailable, get_transport, unreachable_message

        if isinstance(exc, TransportUnavailable):
            sys.exit(unreachable_message(get_transport().url, exc))
        raise


if __name__ == "__main__":
    main()
