"""What a log line is about: fields bound for the duration of a piece of work (a request, a
batch, a message) and added to every log record made meanwhile, in this thread or task.

    with bound(event_id=..., correlation_id=..., group="inventory"):
        log.debug("handled")  # the record carries event_id, correlation_id and group

Formatters decide what to show (JSON lines carry them all; text lines stay short). The process
role (web, relay, consumer:<group>) is set once at start with `set_role`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["ContextFilter", "bound", "current", "set_role"]

_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("eventbus_log_fields", default=None)
_role = "command"


def set_role(role: str) -> None:
    """Name this process in every log line it writes (web, relay, consumer:inventory, ...)."""
    global _role
    _role = role


def current() -> dict[str, Any]:
    """The fields bound now (a copy)."""
    return dict(_fields.get() or {})


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add these fields (None values are left out) to every record logged inside the block,
    on top of those bound outside it."""
    token = _fields.set({**(_fields.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


class ContextFilter(logging.Filter):
    """Put the process role and the bound fields on each record (never overriding what the call
    passed in `extra`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "role"):
            record.role = _role
        for name, value in (_fields.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
