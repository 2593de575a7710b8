"""OpenTelemetry traces, off unless configured by the standard OTEL_* environment variables:
with OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, each process
exports its spans over OTLP/HTTP, named by OTEL_SERVICE_NAME or its role (web, relay,
consumer-<group>). Off, the OpenTelemetry API is a no-op and costs a function call per span.

The web's requests are spans (opentelemetry-instrumentation-django); publishing and handling
events are spans too (eventbus.runtime.tracing), and the envelope carries the W3C trace context, so one
trace runs from POST /api/orders/ through every consumer to the notification.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["configure_tracing", "context_for", "flush_traces", "processing", "publishing", "tracing_configured"]

_configured = False


def tracing_configured() -> bool:
    """Whether the environment asks for traces to be exported."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_tracing(role: str, *, django: bool = False) -> bool:
    """Set up exporting for this process (once), if configured; with django=True also trace
    every HTTP request. Returns whether tracing is on."""
    global _configured
    if _configured or not tracing_configured():
        return _configured
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or f"eventshop-{role}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if django:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument()
    _configured = True
    return True


def flush_traces(timeout_ms: int = 5000) -> None:
    """Export what is buffered (a process about to exit)."""
    if _configured:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        force_flush = getattr(provider, "force_flush", None)
        if force_flush:
            force_flush(timeout_ms)


# --- spans of the event bus -----------------------------------------------------------------------
# With tracing off (not configured) every function below returns at once: no span, no context,
# nothing on the envelope.

_message_spans: contextvars.ContextVar[dict[uuid.UUID, Any] | None] = contextvars.ContextVar(
    "eventbus_message_spans", default=None
)


def context_for(caused_by: Any | None) -> dict[str, str] | None:
    """The W3C trace context (traceparent, tracestate) for a new event's envelope: the span of
    the message that caused it (a consumer applies a batch of messages at once, each with its
    own span), else the current span (the HTTP request)."""
    if not _configured:
        return None
    from opentelemetry import propagate, trace

    carrier: dict[str, str] = {}
    spans = _message_spans.get()
    span = spans.get(caused_by.event_id) if spans and caused_by is not None else None
    if span is not None:
        propagate.inject(carrier, context=trace.set_span_in_context(span))
    else:
        propagate.inject(carrier)
    return carrier or None


@contextlib.contextmanager
def serving(method: str, route: str) -> Iterator[None]:
    """A server span around a request answered outside Django's instrumentation (the web's order
    intake): the events it records carry this span's context."""
    if not _configured:
        yield
        return
    from opentelemetry import trace

    tracer = trace.get_tracer("eventshop.web")
    attributes = {"http.request.method": method, "http.route": route}
    with tracer.start_as_current_span(f"{method} {route}", kind=trace.SpanKind.SERVER, attributes=attributes):
        yield


@contextlib.contextmanager
def publishing(stream: str, count: int, *, event_type: str = "") -> Iterator[None]:
    """A producer span around putting `count` events on `stream`."""
    if not _configured:
        yield
        return
    from opentelemetry import trace

    tracer = trace.get_tracer("eventbus")
    attributes = {
        "messaging.system": "redis",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": stream,
        "messaging.batch.message_count": count,
    }
    if event_type:
        attributes["eventshop.event.type"] = event_type
    with tracer.start_as_current_span(f"publish {stream}", kind=trace.SpanKind.PRODUCER, attributes=attributes):
        yield


@contextlib.contextmanager
def processing(group: str, consumer: str, deliveries: Sequence[tuple[Any, Any]]) -> Iterator[None]:
    """Spans for a batch applied in one transaction: each message (message, envelope) gets its
    own consumer span, a child of the trace its envelope carries; the batch span links to them
    all. Events the handlers record meanwhile continue their cause's trace (context_for)."""
    if not _configured or not deliveries:
        yield
        return
    from opentelemetry import propagate, trace

    tracer = trace.get_tracer("eventbus")
    spans = {}
    for message, envelope in deliveries:
        parent = propagate.extract(envelope.trace_context or {})
        spans[envelope.event_id] = tracer.start_span(
            f"process {envelope.type}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "redis",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": message.stream,
                "messaging.consumer.group.name": group,
                "messaging.message.id": message.id,
                "eventshop.event.id": str(envelope.event_id),
                "eventshop.event.type": envelope.type,
                "eventshop.aggregate.id": envelope.aggregate_id,
                "messaging.client.id": consumer,
            },
        )
    links = [trace.Link(span.get_span_context()) for span in spans.values()]
    token = _message_spans.set(spans)
    try:
        with tracer.start_as_current_span(
            f"process batch {group}",
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={"messaging.system": "redis", "messaging.consumer.group.name": group,
                        "messaging.batch.message_count": len(spans)},
        ):  # fmt: skip
            yield
    finally:
        _message_spans.reset(token)
        for span in spans.values():
            span.end()
