"""The peer: Celery's pipeline (/work/shared/peers/celery-baseline/), reimplemented for the
`peers` scenario of `manage.py bench`. `place_order()` writes an order and its lines and enqueues
`reserve_inventory` on commit; that task reserves stock and confirms the order, then enqueues
`send_notification`, which writes a notification row. Celery 5.x, prefork pool of 2, Redis
broker, database connections reused (CELERY_DB_REUSE_MAX), as the baseline measured it.

Its tables (bench_peers_*) belong to this bench-only app, have no migrations and are created and
dropped by the scenario: nothing of it reaches the product's apps or schema."""
