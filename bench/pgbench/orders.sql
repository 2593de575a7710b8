-- The orders group: confirm the orders, OrderConfirmed to the outbox.
-- One pgbench client runs this, beside the placing clients and the other groups' clients, as
-- one consumer process per group runs in the pipeline scenario: a batch of :batch orders in
-- one transaction as eventbus.batch runs it (inbox rows, the effect, the next event's outbox
-- rows, the batch's ConsumerBatch row). Batch b takes orders (b - 1) * :batch + 1 ..
-- b * :batch; running ahead of the placings it finds fewer rows to update (placing is then the
-- limit anyway).
SELECT nextval('bench_pg_orders_seq') AS b \gset
\set lo (:b - 1) * :batch + 1
\set hi :b * :batch
BEGIN;
INSERT INTO bench_pg_inbox (consumer_group, event_id, processed_at, aggregate_id, attempt, batch_id, consumer, correlation_id, event_type, message_id, occurred_at, stream)
    SELECT 'orders', gen_random_uuid(), now(), md5(i::text)::uuid::text, 1, NULL, 'orders-1', gen_random_uuid(), 'inventory.InventoryReserved', '1-' || i, now(), 'inventory'
    FROM generate_series(:lo, :hi) AS i;
UPDATE bench_pg_order SET status = 'confirmed', confirmed_at = now(), updated_at = now()
    WHERE id IN (SELECT md5(i::text)::uuid FROM generate_series(:lo, :hi) AS i) AND status = 'pending';
INSERT INTO bench_pg_outbox (event_id, event_type, stream, aggregate_type, aggregate_id, correlation_id, body, created_at)
    SELECT gen_random_uuid(), 'orders.OrderConfirmed', 'orders', 'order', md5(i::text)::uuid::text, gen_random_uuid(), repeat('x', 300), now()
    FROM generate_series(:lo, :hi) AS i;
INSERT INTO bench_pg_batch (id, consumer_group, consumer, started_at, duration_ms, size)
    VALUES (gen_random_uuid(), 'orders', 'orders-1', now(), 1.0, :batch);
COMMIT;
