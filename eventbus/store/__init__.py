"""The database side of the bus: outbox, inbox, failures and dead letters, recovery."""
