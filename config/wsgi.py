"""WSGI entry point (gunicorn config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

from eventbus.runtime.logcontext import set_role
from eventbus.runtime.tracing import configure_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
set_role("web")
configure_tracing("web", django=True)  # before the handler loads its middleware: it adds one
application = get_wsgi_application()
