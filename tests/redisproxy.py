"""A TCP proxy in front of a Redis server that can hold its replies back: how tests make Redis
stall, or stop a process just after a write reached Redis."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable


class ReplyHoldingProxy:
    """A TCP proxy in front of Redis that forwards every command, but once `hold` is set, keeps
    back the replies on any connection that sends an XADD (with hold_all: any command): the
    entries land on the stream, the client never hears so. With hold_commands, the XADD itself
    never reaches Redis. How a test stops a process just before or just after a Redis write,
    or makes Redis stall, without touching the code under test."""

    def __init__(self, target_port: int, *, hold_commands: bool = False, hold_all: bool = False) -> None:
        self.target_port = target_port
        self.hold_commands = hold_commands  # swallow the XADD itself instead of its reply
        self.hold_all = hold_all
        self.hold = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._closed = False
        self._holding: list[threading.Event] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # nothing listens there (a primary just killed): refused, as a client would be
                client.close()
                continue
            holding = threading.Event()
            self._holding.append(holding)
            threading.Thread(target=self._commands, args=(client, upstream, holding), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client, holding), daemon=True).start()

    def _commands(self, source: socket.socket, sink: socket.socket, holding: threading.Event) -> None:
        def forward(data: bytes) -> None:
            if self.hold_commands and holding.is_set():
                # A connection that lost a command loses everything sent after it, as a dead link
                # would: forwarding the rest (the pipeline's SADD of its marks, read in a later
                # chunk) would tell the relay that events Redis never got were published.
                return
            if self.hold.is_set() and (self.hold_all or b"XADD" in data):
                holding.set()
                if self.hold_commands:
                    while not self._closed:
                        time.sleep(0.01)
                    return
            sink.sendall(data)

        self._pump(source, sink, forward)

    def _replies(self, source: socket.socket, sink: socket.socket, holding: threading.Event) -> None:
        def forward(data: bytes) -> None:
            while holding.is_set() and not self._closed:
                time.sleep(0.01)
            sink.sendall(data)

        self._pump(source, sink, forward)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, forward: Callable[[bytes], None]) -> None:
        try:
            while data := source.recv(65536):
                forward(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.close()

    def retarget(self, port: int) -> None:
        """Send new connections to another server, as a DNS name or virtual IP moved to the new
        primary after a failover would. Open connections stay where they are (until it dies)."""
        self.target_port = port

    def release(self) -> None:
        """Stop holding: the replies held back so far, and every later one, go through."""
        self.hold.clear()
        for holding in self._holding:
            holding.clear()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
