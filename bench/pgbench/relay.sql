-- The relay: the rows of published events go, three events per order (OrderPlaced,
-- InventoryReserved, OrderConfirmed), in bulk and with a relaxed commit as eventbus.relay
-- forgets them. One pgbench client; :batch orders' worth per transaction.
BEGIN;
SET LOCAL synchronous_commit = off;
DELETE FROM bench_pg_outbox WHERE id IN (SELECT id FROM bench_pg_outbox ORDER BY id LIMIT 3 * :batch);
COMMIT;
