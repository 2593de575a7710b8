-- Placing one order (orders.services.order_place): the order, its two lines and its
-- OrderPlaced outbox row, in one transaction, one commit per order (the scratch tables
-- carry no foreign keys: customer 1 stands for any).
\set p1 random(1, 25)
\set p2 random(26, 50)
\set q random(1, 3)
BEGIN;
SELECT nextval('bench_pg_order_seq') AS n \gset
INSERT INTO bench_pg_order (id, status, total, rejection_reason, created_at, updated_at, customer_id, idempotency_key, request_hash)
    VALUES (md5(:n::text)::uuid, 'pending', 19.80, '', now(), now(), 1, '', '');
INSERT INTO bench_pg_orderitem (product_id, sku, name, quantity, unit_price, order_id)
    VALUES (:p1, 'pg-' || :p1, 'Bench product', :q, 9.90, md5(:n::text)::uuid),
           (:p2, 'pg-' || :p2, 'Bench product', :q, 9.90, md5(:n::text)::uuid);
INSERT INTO bench_pg_outbox (event_id, event_type, stream, aggregate_type, aggregate_id, correlation_id, body, created_at)
    VALUES (gen_random_uuid(), 'orders.OrderPlaced', 'orders', 'order', md5(:n::text)::uuid::text, gen_random_uuid(),
            repeat('x', 420), now());
COMMIT;
