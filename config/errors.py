"""Domain errors services raise; `config.api.exception_handler` is the one place that maps them
to HTTP responses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of errors a user can cause and read."""


class InvalidInput(DomainError):
    """Input that breaks a business rule; `errors` has DRF's shape: field -> messages."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(str(errors))
        self.errors = errors


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    """The request is valid but the current state does not allow it (HTTP 409)."""
