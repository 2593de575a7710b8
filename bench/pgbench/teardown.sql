-- Everything setup.sql made and pgbench wrote.
DROP TABLE IF EXISTS bench_pg_order, bench_pg_orderitem, bench_pg_outbox, bench_pg_inbox, bench_pg_product,
    bench_pg_reservation, bench_pg_notification, bench_pg_batch;
DROP SEQUENCE IF EXISTS bench_pg_order_seq, bench_pg_inventory_seq, bench_pg_orders_seq, bench_pg_notifications_seq;
