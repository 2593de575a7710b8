"""OpenTelemetry traces, off unless configured by the standard OTEL_* environment variables:
with OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, each process
exports its spans over OTLP/HTTP, named by OTEL_SERVICE_NAME or its role (web, relay,
consumer-<group>). Off, the OpenTelemetry API is a no-op and costs a function call per span.

The web's requests are spans (opentelemetry-instrumentation-django); publishing and handling
events are spans too (eventbus.tracing), and the envelope carries the W3C trace context, so one
trace runs from POST /api/orders/ through every consumer to the notification.
"""

from __future__ import annotations

import os

__all__ = ["configure_tracing", "flush_traces", "tracing_configured"]

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
