"""WSGI entry point (gunicorn config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

from eventbus.logcontext import set_role

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
set_role("web")
application = get_wsgi_application()
