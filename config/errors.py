"""Domain errors services raise; `config.api.exception_handler` is the one place that maps them
to HTTP responses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of errors a user can cause and read."""


class InvalidInput(DomainError, ValueError):
    """Input that breaks a business rule; `errors` has DRF's shape: field -> messages (HTTP 400).
    A ValueError: the same input breaks the same rule again, so a consumer does not retry it
    (eventbus.store.failures.cannot_succeed)."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(str(errors))
        self.errors = errors


class Unauthenticated(DomainError):
    """The credentials no longer name an active user (HTTP 401)."""

    code = "authentication_failed"


class NotFound(DomainError):
    """HTTP 404."""


class Conflict(DomainError):
    """The request is valid but the current state does not allow it (HTTP 409)."""


class Unprocessable(DomainError):
    """Well-formed, but contradicts what the same client asked before (HTTP 422), e.g. an
    idempotency key sent again with a different body."""

    code = "unprocessable"


class LimitReached(DomainError):
    """The client holds as much as it may for now and should come back later (HTTP 429 with
    Retry-After)."""

    code = "limit_reached"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
