"""The process runtime: workers, the relay, consumers, heartbeats, status, metrics."""
