-- The inventory group: reserve each order's two lines, InventoryReserved to the outbox.
-- One pgbench client runs this, beside the placing clients and the other groups' clients, as
-- one consumer process per group runs in the pipeline scenario: a batch of :batch orders in
-- one transaction as eventbus.batch runs it (inbox rows, the effect, the next event's outbox
-- rows, the batch's ConsumerBatch row). Batch b takes orders (b - 1) * :batch + 1 ..
-- b * :batch; running ahead of the placings it finds fewer rows to update (placing is then the
-- limit anyway).
SELECT nextval('bench_pg_inventory_seq') AS b \gset
\set lo (:b - 1) * :batch + 1
\set hi :b * :batch
BEGIN;
INSERT INTO bench_pg_inbox (consumer_group, event_id, processed_at, aggregate_id, attempt, batch_id, consumer, correlation_id, event_type, message_id, occurred_at, stream)
    SELECT 'inventory', gen_random_uuid(), now(), md5(i::text)::uuid::text, 1, NULL, 'inventory-1', gen_random_uuid(), 'orders.OrderPlaced', '1-' || i, now(), 'orders'
    FROM generate_series(:lo, :hi) AS i;
UPDATE bench_pg_product p SET stock = p.stock - w.qty, updated_at = now()
    FROM (SELECT k + i % 25 AS id, sum(2) AS qty FROM generate_series(:lo, :hi) AS i, (VALUES (1), (26)) AS l(k) GROUP BY 1) w
    WHERE p.id = w.id AND p.stock >= w.qty;
INSERT INTO bench_pg_reservation (order_id, quantity, status, created_at, product_id)
    SELECT md5(i::text)::uuid, 2, 'reserved', now(), k + i % 25
    FROM generate_series(:lo, :hi) AS i, (VALUES (1), (26)) AS l(k);
INSERT INTO bench_pg_outbox (event_id, event_type, stream, aggregate_type, aggregate_id, correlation_id, body, created_at)
    SELECT gen_random_uuid(), 'inventory.InventoryReserved', 'inventory', 'reservation', md5(i::text)::uuid::text, gen_random_uuid(), repeat('x', 420), now()
    FROM generate_series(:lo, :hi) AS i;
INSERT INTO bench_pg_batch (id, consumer_group, consumer, started_at, duration_ms, size)
    VALUES (gen_random_uuid(), 'inventory', 'inventory-1', now(), 1.0, :batch);
COMMIT;
