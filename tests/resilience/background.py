"""Run a consumer the way its process does (one long `run()`), on a thread, while the test
watches the database and Redis."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from django.db import connection

from eventbus.runtime.consumer import Consumer, ShutdownRequested


class Running:
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name=f"consumer-{consumer.name}", daemon=True)

    def _run(self) -> None:
        try:
            self.consumer.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.errors.append(exc)
        finally:
            connection.close()  # this thread's own database connection

    def wait_until(self, condition: Callable[[], object], *, what: str, timeout: float = 5.0) -> None:
        """Poll until condition() is true; fail at once if the consumer died."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.errors:
                raise AssertionError(f"the consumer died before {what}: {self.errors[0]!r}") from self.errors[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.02)


@contextlib.contextmanager
def running(consumer: Consumer) -> Iterator[Running]:
    """Run `consumer.run()` on a thread for the duration of the block, then stop it cleanly."""
    background = Running(consumer)
    background.thread.start()
    try:
        yield background
    finally:
        with contextlib.suppress(ShutdownRequested):  # raised here if it was waiting in a read
            consumer.request_stop()
        background.thread.join(timeout=15)
        assert not background.thread.is_alive(), "the consumer did not stop"
    if background.errors:
        raise background.errors[0]
