"""The production processes, started as real subprocesses for a benchmark: the relay, one
consumer per group, and gunicorn when HTTP is measured. Same commands as the Procfile, with
production-like settings (DEBUG off, quiet logs, e-mail to a dummy backend)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from django.conf import settings

from eventbus.transport import redis_url

ROOT = Path(__file__).resolve().parent.parent


def bench_env(key_prefix: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{db['NAME']}"
    else:
        auth = f"{db['USER']}:{db['PASSWORD']}@" if db["PASSWORD"] else (f"{db['USER']}@" if db["USER"] else "")
        database_url = f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        # With REDIS_URL unset, the embedded server's own URL: with DATABASE_URL set, the
        # children would otherwise refuse to start without a Redis to share.
        REDIS_URL=redis_url(),
        SECRET_KEY=settings.SECRET_KEY,
        DEBUG="false",
        LOG_LEVEL="WARNING",
        EMAIL_URL="dummymail://",
        EVENTBUS_KEY_PREFIX=key_prefix,
        PYTHONUNBUFFERED="1",
        # The benchmark's few customers place thousands of orders a second: per-customer rate
        # limits and the cap on pending orders would measure the limits, not the system.
        THROTTLES_ENABLED="false",
        MAX_PENDING_ORDERS_PER_CUSTOMER="0",
    )
    return env


class Fleet:
    def __init__(self, key_prefix: str, log_dir: Path) -> None:
        self.env = bench_env(key_prefix)
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            list(args), cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs[name] = proc
        return proc

    def start_pipeline(self, groups: list[str], *, consumer_args: tuple[str, ...] = ()) -> None:
        self.start("relay", sys.executable, "manage.py", "relay_outbox")
        for group in groups:
            self.start(
                group, sys.executable, "manage.py", f"consume_{group}", "--consumer", f"bench-{group}", *consumer_args
            )

    def start_web(self, port: int, *, workers: int, threads: int) -> None:
        # The load generator speaks plain http on loopback, as a TLS-terminating proxy would:
        # production's redirect to https stays off, every other production setting holds.
        self.start(
            "web",
            sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
            "--backlog", "4096", "--worker-connections", "2000", "--keep-alive", "30", "--log-level", "warning",
            extra_env={"ALLOWED_HOSTS": "127.0.0.1,localhost", "DATABASE_POOL": "true",
                       "DATABASE_POOL_MAX": str(threads + 2), "SECURE_SSL_REDIRECT": "false"},
        )  # fmt: skip

    def stop_pipeline(self) -> list[str]:
        """Stop the relay and consumers cleanly (SIGTERM: each finishes its batch); their work
        waits on the streams. Returns the groups, to start them again."""
        names = [n for n in self.procs if n not in ("web", "relay")]
        for name in ["relay", *names]:
            proc = self.procs.pop(name)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        return names

    def rss_mb(self, name: str) -> float:
        return psutil.Process(self.procs[name].pid).memory_info().rss / 2**20

    def cpu_seconds(self, name: str) -> float:
        proc = psutil.Process(self.procs[name].pid)
        total = proc.cpu_times().user + proc.cpu_times().system
        for child in proc.children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
