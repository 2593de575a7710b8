"""The baseline's two tasks (shop/tasks.py), unchanged in what they do."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from bench.peers.models import Notification, Order, Product

log = logging.getLogger(__name__)
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
RETRY = {"autoretry_for": TRANSIENT_DB_ERRORS, "retry_backoff": True, "retry_backoff_max": 60,
         "retry_jitter": True, "max_retries": 5}  # fmt: skip


class InsufficientStock(Exception):
    pass


@shared_task(**RETRY)
def reserve_inventory(order_id: int) -> str | None:
    with transaction.atomic():
        try:
            order = Order.objects.select_for_update().get(pk=order_id)
        except Order.DoesNotExist:
            log.warning("reserve_inventory: order %s does not exist", order_id)
            return None
        if order.status != Order.Status.PENDING:
            return order.status  # delivered twice: already handled
        # Products locked in a stable order: no deadlock between two orders.
        items = list(order.items.order_by("product_id").values_list("product_id", "quantity"))
        try:
            with transaction.atomic():  # all or nothing
                for product_id, qty in items:
                    updated = Product.objects.filter(pk=product_id, stock__gte=qty).update(stock=F("stock") - qty)
                    if not updated:
                        raise InsufficientStock(product_id)
            order.status = Order.Status.CONFIRMED
        except InsufficientStock:
            order.status = Order.Status.REJECTED
        order.confirmed_at = timezone.now()
        order.save(update_fields=["status", "confirmed_at"])
        transaction.on_commit(lambda: send_notification.delay(order_id))
    return order.status


@shared_task(**RETRY)
def send_notification(order_id: int) -> None:
    status = Order.objects.filter(pk=order_id).values_list("status", flat=True).first()
    if status is None:
        log.warning("send_notification: order %s does not exist", order_id)
        return
    kind = "ORDER_CONFIRMED" if status == Order.Status.CONFIRMED else "ORDER_REJECTED"
    Notification.objects.create(order_id=order_id, kind=kind)


def place_order(user_id: int, items: list[tuple[int, int]]) -> Order:
    """The baseline's `place_order()` (shop/services.py): the order and its lines in one
    transaction, `reserve_inventory` enqueued once it has committed."""
    from bench.peers.models import OrderItem

    with transaction.atomic():
        order = Order.objects.create(user_id=user_id)
        OrderItem.objects.bulk_create([OrderItem(order=order, product_id=p, quantity=q) for p, q in items])
        transaction.on_commit(lambda: reserve_inventory.delay(order.id))
    return order
