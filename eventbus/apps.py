from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EventbusConfig(AppConfig):
    name = "eventbus"
    verbose_name = "Event bus"

    def ready(self) -> None:
        # Every app's published events and handlers register themselves on import, so a
        # consumer or the relay knows all event types and all groups before it reads a message.
        autodiscover_modules("events", "handlers")
        from eventbus.redis import transport

        transport.connect_signals()
