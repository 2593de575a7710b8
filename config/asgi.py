"""ASGI entry point: what the Procfile's web process serves (gunicorn with uvicorn workers).

`POST /api/orders/` goes through the order intake (orders.intake: validated from the worker's
caches, placed by the worker's order desk in a transaction shared with the orders arriving at the
same moment, answered 201 once committed); every other request, and every order the intake does
not take itself, goes to Django's ASGI handler."""

import os
import warnings

from django.core.asgi import get_asgi_application

from eventbus.runtime.logcontext import set_role
from eventbus.runtime.tracing import configure_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
set_role("web")
configure_tracing("web", django=True)  # before the handler loads its middleware: it adds one
django_application = get_asgi_application()
# whitenoise serves static files as a file iterator, which Django's ASGI handler reads in a
# thread and warns about on every file; the files are small and cached by browsers.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

from orders.intake import OrderIntake  # noqa: E402  (the apps load with the handler above)

application = OrderIntake(django_application)
