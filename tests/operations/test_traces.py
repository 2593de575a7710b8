"""OpenTelemetry: the web, the relay and the consumers run as processes exporting OTLP/HTTP to a
small receiver inside the test (an in-memory exporter could not see other processes), and one
order's trace runs from POST /api/orders/ through every consumer, parented as it happened."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from rest_framework.authtoken.models import Token

from tests.factories import ProductFactory, UserFactory
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

GROUPS = ("inventory", "orders", "notifications")
SERVER, CONSUMER = 2, 5  # opentelemetry.proto's Span.SpanKind


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    service: str
    attributes: dict[str, str]
    links: tuple[str, ...]


class Receiver:
    """An OTLP/HTTP endpoint (POST /v1/traces, protobuf) that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        lock = threading.Lock()
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest.FromString(body)
                with lock:
                    for resource_spans in request.resource_spans:
                        service = next(
                            (
                                a.value.string_value
                                for a in resource_spans.resource.attributes
                                if a.key == "service.name"
                            ),
                            "",
                        )
                        for scope in resource_spans.scope_spans:
                            for s in scope.spans:
                                spans.append(
                                    Span(
                                        s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name, s.kind,
                                        service,
                                        {a.key: a.value.string_value or str(a.value.int_value) for a in s.attributes},
                                        tuple(link.span_id.hex() for link in s.links),
                                    )
                                )  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_one_trace_runs_from_the_http_request_through_every_consumer_to_the_notification(processes, receiver):
    processes.env_overrides.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="100")
    product = ProductFactory(stock=5)
    key = Token.objects.create(user=UserFactory()).key
    web = processes.start_web()
    processes.start_relay()
    for group in GROUPS:
        processes.start_consumer(group, f"trace-{group}")

    body = json.dumps({"items": [{"product_id": product.pk, "quantity": 1}]}).encode()
    request = urllib.request.Request(
        f"{web}/api/orders/", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {key}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        order_id = json.loads(response.read())["id"]

    def span(name: str) -> Span | None:
        return next(
            (s for s in receiver.spans if s.name == name and s.attributes.get("eventshop.aggregate.id") == order_id),
            None,
        )

    # Each process exports its spans on its own schedule: the last step's may arrive first.
    steps = ["process orders.OrderPlaced", "process inventory.InventoryReserved", "process orders.OrderConfirmed"]
    wait_until(lambda: all(span(name) is not None for name in steps), timeout=40, what="every step's span")
    server = next(
        s for s in receiver.spans if s.kind == SERVER and "api/orders" in s.name and s.name.startswith("POST")
    )
    reserve = span("process orders.OrderPlaced")
    confirm = span("process inventory.InventoryReserved")
    notify = span("process orders.OrderConfirmed")

    assert reserve is not None
    assert confirm is not None
    traces = {server.trace_id, reserve.trace_id, confirm.trace_id, notify.trace_id}
    assert traces == {server.trace_id}, "one trace"
    assert reserve.parent_id == server.span_id, "the request that placed the order caused the reservation"
    assert confirm.parent_id == reserve.span_id, "the reservation caused the confirmation"
    assert notify.parent_id == confirm.span_id, "the confirmation caused the notification"
    assert (reserve.kind, confirm.kind, notify.kind) == (CONSUMER, CONSUMER, CONSUMER)
    assert reserve.attributes["messaging.consumer.group.name"] == "inventory"
    assert reserve.attributes["messaging.destination.name"] == "orders"
    assert reserve.attributes["messaging.system"] == "redis"
    assert (reserve.service, server.service) == ("eventshop-consumer-inventory", "eventshop-web")
    batches = [s for s in receiver.spans if s.name == "process batch inventory" and reserve.span_id in s.links]
    assert batches, "the batch span links to the message spans it applied"
