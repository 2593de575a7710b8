"""Logging for every process, gunicorn's own logs included: JSON lines (LOG_FORMAT=json, the
default with DEBUG off) for log pipelines, short text lines for a person (`make run`).

A JSON line has time, level, logger, message, the process role and every field bound by
eventbus.runtime.logcontext (request_id; on lines about an event: event_id, event_type, correlation_id,
causation_id, aggregate_id, group, consumer, stream, message_id, attempt, duration_ms).
Built without Django's settings, so gunicorn's configuration can use it before Django starts.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from typing import Any

from pythonjsonlogger.json import JsonFormatter

__all__ = ["BatchedStreamHandler", "StaticFilesFilter", "TextFormatter", "default_format", "logging_config"]

# Fields a JSON line shows when they are set (logcontext binds them; gunicorn's access log adds
# its own below).
EVENT_FIELDS = (
    "request_id", "event_id", "event_type", "correlation_id", "causation_id", "aggregate_id", "group", "consumer",
    "stream", "message_id", "attempt", "duration_ms", "batch_size",
)  # fmt: skip


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time (ISO 8601 UTC), level, logger, message, role, and the
    bound fields."""

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["time"] = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"
        log_record["level"] = record.levelname
        log_record["logger"] = record.name
        log_record["role"] = getattr(record, "role", None)
        access = log_record.pop("access", None)  # gunicorn's access line: its fields, flat
        if access:
            log_record.update(access)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message`, with the time first unless the process runner already prints one
    (LOG_TIMESTAMPS=false, which `make run` sets: honcho stamps every line)."""

    def __init__(self) -> None:
        stamp = os.environ.get("LOG_TIMESTAMPS", "true").lower() not in ("0", "false", "no")
        super().__init__(("%(asctime)s " if stamp else "") + "%(levelname)s %(name)s: %(message)s")


class BatchedStreamHandler(logging.StreamHandler):
    """A StreamHandler for lines written on every request (the web's access log): the caller
    formats its line, a background thread writes what has gathered every `interval_s` (sooner
    when `max_lines` wait), so no request waits for a write to stderr. What gathered is written
    at exit; a process killed outright loses at most `interval_s` of lines."""

    def __init__(self, stream: Any = None, interval_s: float = 0.2, max_lines: int = 1000) -> None:
        super().__init__(stream)
        self.interval_s, self.max_lines = interval_s, max_lines
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        self._lines: list[str] = []
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - logging's own rule: a bad record never breaks the caller
            self.handleError(record)
            return
        with self._wake:
            self._lines.append(line)
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_forever, name="log-writer", daemon=True)
                self._writer.start()
            if len(self._lines) >= self.max_lines:
                self._wake.notify()

    def _write_forever(self) -> None:
        while True:
            with self._wake:
                self._wake.wait(self.interval_s)
            self.flush()

    def flush(self) -> None:
        with self._wake:
            lines, self._lines = self._lines, []
        if lines:
            with contextlib.suppress(OSError, ValueError):  # stderr closed at exit
                self.stream.write("".join(lines))
                self.stream.flush()


class StaticFilesFilter(logging.Filter):
    """Drop gunicorn's access-log lines for static files (a page's CSS and scripts): in a
    person's terminal they bury the requests that matter."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, dict) else {}
        return not str(args.get("U", "")).startswith("/static/")


class AccessFields(logging.Filter):
    """Gunicorn's access-log record as fields of its JSON line (method, path, status, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, dict) else {}
        if args:
            record.access = {
                "method": args.get("m"), "path": args.get("U"), "status": args.get("s"),
                "duration_ms": round(int(args.get("D", 0) or 0) / 1000, 3), "remote_addr": args.get("h"),
                "request_id": _header(args, "{x-request-id}o") or _header(args, "{x-request-id}i"),
            }  # fmt: skip
        return True


def _header(args: dict[str, Any], atom: str) -> str | None:
    value = args.get(atom)
    return None if value in (None, "-") else str(value)


def default_format(*, debug: bool) -> str:
    """LOG_FORMAT, else json in production and text with DEBUG (make run)."""
    return os.environ.get("LOG_FORMAT", "text" if debug else "json").lower()


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """The dictConfig for every process: the project's loggers at `level`, everything else at
    WARNING, one handler on stderr, and gunicorn's error and access logs in the same format
    (gunicorn and Django both apply it, whichever configures logging last)."""
    formatter = {"()": JsonLineFormatter} if log_format == "json" else {"()": TextFormatter}
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "eventbus.runtime.logcontext.ContextFilter"},
            "static": {"()": StaticFilesFilter},
            "access": {"()": AccessFields},
        },
        "formatters": {"line": formatter},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["context"]},
        },
        "root": {"handlers": ["console"], "level": "WARNING"},
        "loggers": {
            name: {"level": level}
            for name in ("eventbus", "orders", "inventory", "notifications", "config", "dashboard", "bulk")
        },
    }
    access_filters = ["context", "access"] if log_format == "json" else ["context", "static"]
    config["handlers"]["access"] = {
        "class": "config.logs.BatchedStreamHandler", "formatter": "line", "filters": access_filters,
    }  # fmt: skip
    config["loggers"]["gunicorn.error"] = {"level": "INFO", "handlers": ["console"], "propagate": False}
    config["loggers"]["gunicorn.access"] = {"level": "INFO", "handlers": ["access"], "propagate": False}
    return config
