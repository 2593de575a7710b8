"""A real SMTP server for the e-mail tests (aiosmtpd on a free port of 127.0.0.1), in each of the
ways a mail server lets a shop down: down (nothing listens), silent (accepts the connection and
never says a word), refusing for now (4xx), refusing for good (5xx), slow. It can stop and come
back on the same port, in another mode."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from collections import Counter
from email.message import Message

from aiosmtpd.controller import Controller

from tests.processes import free_port

MODES = ("accept", "4xx", "5xx", "slow")


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server: object, session: object, envelope: object, address: str, options: list) -> str:
        if self.server.mode == "4xx":
            return "451 4.3.0 Mailbox busy, try again later"
        if self.server.mode == "5xx":
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        if self.server.mode == "slow":
            await asyncio.sleep(self.server.slow_s)
        content = envelope.content  # type: ignore[attr-defined]
        message = email.message_from_bytes(content if isinstance(content, bytes) else content.encode())
        with self.server.lock:
            self.server.received.append(message)
            self.server.sessions.add(session.peer)  # type: ignore[attr-defined]
        return "250 Message accepted for delivery"


class SmtpServer:
    """Starts down; `start(mode)`, `silent()`, `stop()` as often as a test likes, one port."""

    def __init__(self, *, slow_s: float = 0.3) -> None:
        self.port = free_port()
        self.mode = "accept"
        self.slow_s = slow_s
        self.received: list[Message] = []
        self.sessions: set[tuple] = set()  # the client address of each session that delivered mail
        self.lock = threading.Lock()
        self._controller: Controller | None = None
        self._silent: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self, mode: str = "accept") -> SmtpServer:
        assert mode in MODES, mode
        self.stop()
        self.mode = mode
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, ready_timeout=10)
        self._controller.start()
        return self

    def silent(self) -> SmtpServer:
        """Listen and complete every TCP handshake, but never greet: a hung mail server."""
        self.stop()
        self._silent = socket.socket()
        self._silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._silent.bind(("127.0.0.1", self.port))
        self._silent.listen(128)
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._silent is not None:
            self._silent.close()
            self._silent = None

    def by_event(self) -> Counter[str]:
        """How many e-mails arrived for each event id (the X-Event-Id header)."""
        with self.lock:
            return Counter(m["X-Event-Id"] for m in self.received)
