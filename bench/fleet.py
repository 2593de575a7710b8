"""The production processes a benchmark measures (the relay, one consumer per group, and the
web when HTTP is measured), each started from the Procfile by honcho as `make run` starts them,
with production settings and the benchmark's environment (bench_env: DEBUG off, quiet logs,
e-mail to a dummy backend, no per-customer limits, its own Redis key prefix). The spike's web
is the exception: it runs as deployed (`start_web_as_deployed`), limits included.

One honcho per Procfile process rather than one for all: honcho writes every process into one
stream and stops them all when one exits, while the benchmark keeps a log per process and stops
the relay and consumers in the middle of the HTTP scenario with the web still serving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from django.conf import settings

from eventbus.redis.transport import redis_url

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"
# gunicorn options the Procfile leaves at their defaults, for the benchmark's thousand
# keep-alive connections; gunicorn reads them from this variable under the Procfile's own.
WEB_OPTIONS = "--backlog 4096 --worker-connections 2000 --keep-alive 30 --log-level warning"
# The load generators speak plain http on loopback, as a TLS-terminating proxy would:
# production's redirect to https stays off, every other production setting holds.
LOOPBACK_PLAIN_HTTP = {"ALLOWED_HOSTS": "127.0.0.1,localhost", "SECURE_SSL_REDIRECT": "false"}
# What the web started "as deployed" (the spike) must not inherit: the sizes and options the
# benchmark (or the caller's shell) would give gunicorn over the Procfile's, the connection
# pool, and the benchmark's switches that turn production's per-customer limits off.
AS_DEPLOYED_UNSET = (
    "WEB_CONCURRENCY", "WEB_THREADS", "GUNICORN_CMD_ARGS", "DATABASE_POOL", "DATABASE_POOL_MIN",
    "DATABASE_POOL_MAX", "THROTTLES_ENABLED", "MAX_PENDING_ORDERS_PER_CUSTOMER",
)  # fmt: skip


def database_url(*, password: bool = True) -> str:
    """The URL of the database these settings use (without its password for display)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    secret = f":{db['PASSWORD'] if password else '***'}" if db["PASSWORD"] else ""
    auth = f"{db['USER']}{secret}@" if db["USER"] else ""
    return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def bench_env(key_prefix: str) -> dict[str, str]:
    """The environment of every process the benchmark starts."""
    env = dict(os.environ)
    env.update(
        # The Procfile's `python` and `gunicorn` are this interpreter's (make run puts the
        # virtualenv first on PATH too).
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Production's settings: the processes measured are the ones production runs.
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url(),
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
    """Procfile processes started by name; `pids` maps each to the process running its command
    (for CPU accounting, memory and py-spy), and `log_dir/<name>.log` holds its output."""

    def __init__(self, key_prefix: str, log_dir: Path) -> None:
        self.env = bench_env(key_prefix)
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.honchos: dict[str, subprocess.Popen] = {}
        self.pids: dict[str, int] = {}

    def start(
        self,
        name: str,
        *,
        port: int = 5000,
        env: dict[str, str] | None = None,
        unset: tuple[str, ...] = (),
        instance: int = 1,
    ) -> int:
        """Start the Procfile's process `name` under its own honcho, with `env` added to the
        benchmark's environment and the variables in `unset` removed; returns its pid. A second
        instance of the same process is known as `name#2`, and so on."""
        key = name if instance == 1 else f"{name}#{instance}"
        environment = {k: v for k, v in {**self.env, **(env or {})}.items() if k not in unset}
        log = open(self.log_dir / f"{key}.log", "ab")  # noqa: SIM115 - owned by honcho
        honcho = subprocess.Popen(
            [
                sys.executable, "-m", "honcho", "start", "--procfile", str(PROCFILE), "--app-root", str(ROOT),
                # honcho lets a .env file override the environment: the benchmark's must win.
                "--env", os.devnull, "--no-colour", "--port", str(port), name,
            ],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self.honchos[key] = honcho
        self.pids[key] = self._find(key)
        return self.pids[key]

    def start_pipeline(self, groups: list[str], *, per_group: int = 1, env: dict[str, str] | None = None) -> None:
        """The relay, `per_group` consumer processes per group (each group is a process of the
        Procfile) and the mailer, with `env` added."""
        self.start("relay", env=env)
        for name in groups:
            for instance in range(1, per_group + 1):
                self.start(name, env=env, instance=instance)
        self.start("mailer", env=env)

    def start_web(self, port: int, *, workers: int, threads: int) -> None:
        """The web for the http and burst scenarios: `workers` x `threads`, a connection pool
        and WEB_OPTIONS over the Procfile's defaults."""
        self.start(
            "web",
            port=port,
            env={
                "BIND": "127.0.0.1",
                "WEB_CONCURRENCY": str(workers),
                "WEB_THREADS": str(threads),
                "GUNICORN_CMD_ARGS": WEB_OPTIONS,
                "DATABASE_POOL": "true",
                # `threads` for Django's requests beside what the order desk keeps (its clerks, its look-ups).
                "DATABASE_POOL_MAX": str(threads + settings.INTAKE_DESK_KEPT_CONNECTIONS),
                **LOOPBACK_PLAIN_HTTP,
            },
        )

    def start_web_as_deployed(self, port: int) -> dict[str, str]:
        """The web as the Procfile's `web:` line runs it in production: its own defaults for
        workers, threads, backlog, keep-alive and connections per worker (whatever the line says
        when this runs), no connection pool, the rate limits and the cap on pending orders on.
        Only what plain http on loopback needs is set, as in `start_web`. Returns what was set."""
        env = dict(LOOPBACK_PLAIN_HTTP, BIND="127.0.0.1")
        self.start("web", port=port, env=env, unset=AS_DEPLOYED_UNSET)
        return {**env, "PORT": str(port)}

    def stop_web(self) -> None:
        """Stop the web, if it runs (SIGTERM: gunicorn finishes the requests in hand)."""
        if "web" in self.honchos:
            self._stop("web", timeout=30)

    def children(self, name: str) -> int:
        """How many processes run below the process `name` (gunicorn's workers)."""
        return len(psutil.Process(self.pids[name]).children(recursive=True))

    def stop_pipeline(self) -> list[str]:
        """Stop the relay and consumers cleanly (SIGTERM: each finishes its batch); their work
        waits on the streams. Returns the groups, to start them again."""
        running = [n for n in self.honchos if n != "web"]
        self._stop_all(running, timeout=30)
        return sorted({n.partition("#")[0] for n in running} - {"relay", "mailer"})

    def procfile_command(self, name: str) -> str:
        """The command the Procfile runs for `name`, as it reads now."""
        for line in PROCFILE.read_text().splitlines():
            label, sep, command = line.partition(":")
            if sep and label.strip() == name:
                return command.strip()
        raise RuntimeError(f"the Procfile has no {name!r} process")

    def rss_mb(self, name: str) -> float:
        return psutil.Process(self.pids[name]).memory_info().rss / 2**20

    def cpu_seconds(self, name: str) -> float:
        """CPU used by the process and its children (gunicorn's workers), not by honcho."""
        proc = psutil.Process(self.pids[name])
        total = proc.cpu_times().user + proc.cpu_times().system
        for child in proc.children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def check_alive(self) -> None:
        """Raise with the end of its log if a process has exited (its honcho then exits too)."""
        for name, honcho in self.honchos.items():
            if honcho.poll() is not None:
                raise RuntimeError(f"{name} exited (honcho: {honcho.returncode}):\n{self._log_tail(name)}")

    def stop(self) -> None:
        self._stop_all(list(self.honchos), timeout=15)

    def _stop_all(self, names: list[str], *, timeout: float) -> None:
        """SIGTERM to all of them at once (each finishes its work meanwhile), then wait for each
        within one `timeout` in all."""
        for name in names:
            if self.honchos[name].poll() is None:
                self.honchos[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in names:
            self._stop(name, timeout=max(deadline - time.monotonic(), 0.1))

    def _stop(self, name: str, *, timeout: float) -> None:
        """SIGTERM to honcho, which passes it on and waits for the process (KILL after 5 s)."""
        honcho = self.honchos.pop(name)
        pid = self.pids.pop(name)
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)
        try:
            honcho.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # honcho started the process in a session of its own: kill that, then honcho.
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            honcho.kill()
            honcho.wait()

    def _find(self, name: str, timeout: float = 30) -> int:
        """The pid running the Procfile command `name`: the process below honcho that carries
        honcho's HONCHO_PROCESS_NAME for it and is no longer the shell that exec's the command
        (its children, such as gunicorn's workers, carry the name too)."""
        honcho = self.honchos[name]
        wanted = f"{name.partition('#')[0]}.1"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if honcho.poll() is not None:
                raise RuntimeError(f"{name} did not start (honcho: {honcho.returncode}):\n{self._log_tail(name)}")
            for proc in psutil.Process(honcho.pid).children(recursive=True):
                try:
                    if (
                        proc.environ().get("HONCHO_PROCESS_NAME") == wanted
                        and proc.parent().environ().get("HONCHO_PROCESS_NAME") != wanted
                        and proc.cmdline()[:2] != ["/bin/sh", "-c"]
                    ):
                        return proc.pid
                except psutil.Error:  # exited, or is exec'ing, meanwhile
                    continue
            time.sleep(0.02)
        raise RuntimeError(f"{name} did not start within {timeout:g} s:\n{self._log_tail(name)}")

    def _log_tail(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]


def server_cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by this machine's PostgreSQL and Redis servers, by label
    ("postgresql", "redis"), the backends that exited meanwhile included (the postmaster's
    children times hold them)."""
    out = {}
    for label, names in (("postgresql", ("postgres",)), ("redis", ("redis-server",))):
        total = 0.0
        for proc in psutil.process_iter(["name"]):
            try:
                if proc.info["name"] and proc.info["name"].startswith(names):
                    times = proc.cpu_times()
                    total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                pass
        out[label] = total
    return out
