-- The notifications group: one notification per order.
-- One pgbench client runs this, beside the placing clients and the other groups' clients, as
-- one consumer process per group runs in the pipeline scenario: a batch of :batch orders in
-- one transaction as eventbus.batch runs it (inbox rows, the effect, the next event's outbox
-- rows, the batch's ConsumerBatch row). Batch b takes orders (b - 1) * :batch + 1 ..
-- b * :batch; running ahead of the placings it finds fewer rows to update (placing is then the
-- limit anyway).
SELECT nextval('bench_pg_notifications_seq') AS b \gset
\set lo (:b - 1) * :batch + 1
\set hi :b * :batch
BEGIN;
INSERT INTO bench_pg_inbox (consumer_group, event_id, processed_at, aggregate_id, attempt, batch_id, consumer, correlation_id, event_type, message_id, occurred_at, stream)
    SELECT 'notifications', gen_random_uuid(), now(), md5(i::text)::uuid::text, 1, NULL, 'notifications-1', gen_random_uuid(), 'orders.OrderConfirmed', '1-' || i, now(), 'orders'
    FROM generate_series(:lo, :hi) AS i;
INSERT INTO bench_pg_notification (order_id, event_id, kind, channel, subject, body, status, error, created_at, user_id,
                                   attempts, next_attempt_at, queued_at, correlation_id, order_placed_at)
    SELECT md5(i::text)::uuid, gen_random_uuid(), 'confirmed', 'email', 'Your order is confirmed', repeat('y', 300), 'pending', '', now(), 1,
           0, now(), now(), gen_random_uuid(), now()
    FROM generate_series(:lo, :hi) AS i;
INSERT INTO bench_pg_batch (id, consumer_group, consumer, started_at, duration_ms, size)
    VALUES (gen_random_uuid(), 'notifications', 'notifications-1', now(), 1.0, :batch);
COMMIT;
