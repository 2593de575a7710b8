-- The database's own ceiling for this design's writes. bench/ceiling.py runs this, then
-- pgbench with place.sql, inventory.sql, orders.sql, notifications.sql and relay.sql at once,
-- then teardown.sql. Scratch copies of the product's tables: same columns, defaults, checks, indexes and identities (LIKE ... INCLUDING ALL;
-- foreign keys are not copied), so nothing pgbench writes touches the product's rows.
DROP TABLE IF EXISTS bench_pg_order, bench_pg_orderitem, bench_pg_outbox, bench_pg_inbox, bench_pg_product,
    bench_pg_reservation, bench_pg_notification, bench_pg_batch;
DROP SEQUENCE IF EXISTS bench_pg_order_seq, bench_pg_inventory_seq, bench_pg_orders_seq, bench_pg_notifications_seq;
CREATE TABLE bench_pg_order (LIKE orders_order INCLUDING ALL);
CREATE TABLE bench_pg_orderitem (LIKE orders_orderitem INCLUDING ALL);
CREATE TABLE bench_pg_outbox (LIKE eventbus_outboxevent INCLUDING ALL);
CREATE TABLE bench_pg_inbox (LIKE eventbus_processedevent INCLUDING ALL);
CREATE TABLE bench_pg_product (LIKE inventory_product INCLUDING ALL);
CREATE TABLE bench_pg_reservation (LIKE inventory_reservation INCLUDING ALL);
CREATE TABLE bench_pg_notification (LIKE notifications_notification INCLUDING ALL);
CREATE TABLE bench_pg_batch (LIKE eventbus_consumerbatch INCLUDING ALL);
-- Order n's id is md5(n)::uuid: the placing client and the consumers' batches agree on it.
CREATE SEQUENCE bench_pg_order_seq;
CREATE SEQUENCE bench_pg_inventory_seq;
CREATE SEQUENCE bench_pg_orders_seq;
CREATE SEQUENCE bench_pg_notifications_seq;
INSERT INTO bench_pg_product (sku, name, price, stock, active, revision, created_at, updated_at)
    SELECT 'pg-' || i, 'Bench product ' || i, 9.90, 900000000, true, 0, now(), now()
    FROM generate_series(1, 50) AS i;
