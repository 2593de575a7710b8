"""A test-only event and handlers whose failures each test scripts.

`Flaky` asks the "inventory" group to restock one product by one unit through the real service
(`product_restock`), so "applied once" is a stock figure in the database. The handler restocks
first and fails afterwards when told to: a failed attempt's write must be rolled back with its
savepoint. The "notifications" group only notes which events it saw, to prove that a replay
reaches the failing group alone.

Registration is global, but nothing misbehaves unless a test scripts it for its own product.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

from django.db import transaction

from eventbus.messages.events import Envelope, Event, PermanentError
from eventbus.messages.registry import handles
from eventbus.store import outbox
from inventory.services import product_restock


class ScriptedEvent(Event, stream="orders", aggregate_type="test", prefix="tests"):
    """Events only the tests publish, on the orders stream."""


@dataclass(frozen=True)
class Flaky(ScriptedEvent):
    product_id: int


class Refused(PermanentError):
    """What the handler raises when a test scripts a failure that no retry can fix."""


@dataclass
class Script:
    failures_left: float = 0  # transient failures before it succeeds (math.inf: never succeeds)
    refuse: bool = False
    calls: int = 0


@dataclass
class HandlerScript:
    """Tells the inventory handler how to behave for one product, and counts its calls."""

    scripts: dict[int, Script] = field(default_factory=dict)
    seen_by_notifications: list[uuid.UUID] = field(default_factory=list)

    def for_product(self, product_id: int) -> Script:
        return self.scripts.setdefault(product_id, Script())

    def fail(self, product: object, *, times: float) -> None:
        self.for_product(product.pk).failures_left = times  # type: ignore[attr-defined]

    def fail_always(self, product: object) -> None:
        self.fail(product, times=math.inf)

    def refuse(self, product: object) -> None:
        self.for_product(product.pk).refuse = True  # type: ignore[attr-defined]

    def succeed(self, product: object) -> None:
        script = self.for_product(product.pk)  # type: ignore[attr-defined]
        script.failures_left, script.refuse = 0, False

    def calls(self, product: object) -> int:
        return self.for_product(product.pk).calls  # type: ignore[attr-defined]

    def reset(self) -> None:
        self.scripts.clear()
        self.seen_by_notifications.clear()


script = HandlerScript()


@handles(Flaky, group="inventory")
def restock_flakily(envelopes: list[Envelope]) -> None:
    for envelope in envelopes:
        event: Flaky = envelope.payload  # type: ignore[assignment]
        plan = script.for_product(event.product_id)
        plan.calls += 1
        product_restock(product_id=event.product_id, quantity=1)
        if plan.refuse:
            raise Refused(f"product {event.product_id} refuses restocks")
        if plan.failures_left > 0:
            plan.failures_left -= 1
            raise RuntimeError(f"restock of product {event.product_id} failed, as scripted")


@handles(Flaky, group="notifications")
def note_flaky(envelopes: list[Envelope]) -> None:
    script.seen_by_notifications.extend(e.event_id for e in envelopes)


def record_flaky(*products: object) -> list[Envelope]:
    """Write one Flaky event per product to the outbox, in one committed transaction."""
    with transaction.atomic():
        return [outbox.record(Flaky(product_id=p.pk), aggregate_id=p.pk) for p in products]  # type: ignore[attr-defined]
