"""The image and compose.yaml, run as a person would: bin/container-build, then `podman-compose
up` of the whole stack (PostgreSQL, Redis with AOF, migrate, web, relay, the consumers, the mail
catcher). An order placed through the API ends confirmed and e-mailed; a consumer stopped and
started again loses nothing.

Skipped, with the reason, where podman or podman-compose is missing (.ci/run installs both).
With the base image cached a run takes about two minutes; the first build on a machine also
runs debootstrap (about two minutes more).
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.processes import ROOT, free_port, wait_until

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

CONTAINERS_CONF = ROOT / "container" / "containers.conf"


def _missing() -> str | None:
    """Why the stack cannot run on this machine, or None."""
    for tool in ("podman", "podman-compose"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install -y podman podman-compose runc debootstrap)"
    wanted = int(re.search(r"nofile=(\d+)", CONTAINERS_CONF.read_text()).group(1))  # type: ignore[union-attr]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < wanted:
        return f"containers.conf asks for {wanted} open files, above this machine's hard limit {hard} (ulimit -Hn)"
    return None


if reason := _missing():
    pytest.skip(reason, allow_module_level=True)


def run(*args: str, env: dict[str, str], timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode:
        said = result.stdout[-3000:] + result.stderr[-3000:]
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{said}")
    return result


@dataclass
class Stack:
    project: str
    port: int
    env: dict[str, str]
    token: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def podman(self, *args: str, **kw: object) -> subprocess.CompletedProcess:
        return run("podman", *args, env=self.env, **kw)  # type: ignore[arg-type]

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "Authorization": f"Token {self.token}"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def containers(self, field: str) -> list[str]:
        """`field` (a podman ps --format template) of each of the stack's containers."""
        label = f"label=io.podman.compose.project={self.project}"
        return self.podman("ps", "-a", "--filter", label, "--format", field).stdout.split()

    def status(self) -> dict:
        command = ("exec", self.container("web"), "python", "manage.py", "status", "--json")
        return json.loads(self.podman(*command, check=False).stdout or "{}")

    def all_alive(self) -> bool:
        status = self.status()
        groups = status.get("consumers_by_group", {})
        return (
            status.get("relays") == 1
            and set(groups) >= {"inventory", "orders", "notifications"}
            and all(groups.values())
        )

    def order_product_1(self, quantity: int = 1) -> tuple[int, dict]:
        return self.api("POST", "/api/orders/", {"items": [{"product_id": 1, "quantity": quantity}]})

    def catalog_has_product_1(self) -> bool:
        """Whether an order for product 1 is taken (it is then placed, and confirmed later)."""
        status, answer = self.order_product_1()
        if status == 400 and "Product 1 does not exist." in json.dumps(answer):
            return False
        assert status in (201, 202), answer
        return True

    def place_order(self, quantity: int = 1) -> str:
        status, order = self.order_product_1(quantity)
        assert status in (201, 202), order
        return order["id"]

    def order_status(self, order_id: str) -> str:
        return self.api("GET", f"/api/orders/{order_id}/")[1].get("status", "")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as answer:
            return answer.status == 200
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(CONTAINERS_CONF),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "PORT": str(free_port()),
        "LOG_FORMAT": "text",
    }
    stack = Stack(project=f"eventshoptest{secrets.token_hex(3)}", port=int(env["PORT"]), env=env)
    started = time.monotonic()
    run("bin/container-build", env=env, timeout=1500)
    stack.timings["build"] = time.monotonic() - started
    compose = ("podman-compose", "-p", stack.project, "-f", "compose.yaml")
    try:
        run(*compose, "up", "-d", env=env, timeout=300)
        wait_until(lambda: _healthy(stack.port), timeout=240, what="the stack's /healthz", interval=1)
        stack.timings["up"] = time.monotonic() - started - stack.timings["build"]
        seeded = stack.podman("exec", stack.container("web"), "python", "manage.py", "seed_demo", "--force").stdout
        stack.token = re.search(r"alice .*API token: (\w+)", seeded).group(1)  # type: ignore[union-attr]
        # As an operator would: `status` says every group has a live consumer and a relay is alive.
        wait_until(stack.all_alive, timeout=120, what="status to see every consumer and the relay", interval=2)
        # The order desk knows a product once the orders consumer has applied its catalog event
        # (relay, then orders): seconds after seeding, not at once.
        wait_until(stack.catalog_has_product_1, timeout=120, what="the demo catalog to reach the orders", interval=1)
        yield stack
    except BaseException:
        for name in stack.containers("{{.Names}}"):
            said = stack.podman("logs", "--tail", "30", name, check=False)
            print(f"--- the last lines of {name}'s log:\n{said.stdout}{said.stderr}")
        raise
    finally:
        ids = stack.containers("{{.ID}}")
        if ids:
            run("podman", "rm", "-f", "-t", "2", *ids, env=env, check=False)
        run(*compose, "down", "-v", env=env, timeout=300, check=False)
        run("podman", "network", "rm", "-f", f"{stack.project}_default", env=env, check=False)
        print(f"container stack timings (s): {', '.join(f'{k} {v:.0f}' for k, v in stack.timings.items())}")


def test_an_order_placed_through_the_api_is_confirmed_and_its_email_is_caught(stack):
    order_id = stack.place_order()

    wait_until(lambda: stack.order_status(order_id) == "confirmed", timeout=60, what="the confirmation", interval=0.5)
    caught = lambda: stack.podman("logs", stack.container("mailcatcher")).stdout  # noqa: E731
    wait_until(lambda: f"Your order {order_id[:8]} is confirmed" in caught(), timeout=60, what="the e-mail", interval=1)


def test_a_consumer_stopped_and_started_again_loses_nothing(stack):
    stack.podman("stop", "-t", "10", stack.container("inventory"))
    orders = [stack.place_order() for _ in range(5)]
    time.sleep(2)
    assert "confirmed" not in {stack.order_status(o) for o in orders}  # nobody reserves stock meanwhile

    stack.podman("start", stack.container("inventory"))

    wait_until(
        lambda: {stack.order_status(o) for o in orders} == {"confirmed"}, timeout=120,
        what="every order placed while the inventory consumer was down to be confirmed", interval=1,
    )  # fmt: skip


def test_status_counts_one_live_consumer_per_group_and_the_relay(stack):
    wait_until(lambda: stack.status().get("relays") == 1, timeout=60, what="the relay's beat", interval=2)
    status = stack.status()
    assert {"inventory", "orders", "notifications"} <= set(status["consumers_by_group"])
    assert set(status["consumers_by_group"].values()) == {1}
    assert status["relays"] == 1
    assert len({p["name"] for p in status["processes"]}) == len(status["processes"])
    assert not [p for p in status["problems"] if "no live consumer" in p or "relay" in p], status["problems"]


def test_the_image_runs_as_a_user_without_package_lists_or_pip_caches(stack):
    image = stack.env.get("EVENTSHOP_IMAGE", "localhost/eventshop:latest")
    size = int(stack.podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    leftovers = stack.podman(
        "run", "--rm", "--no-healthcheck", "--user", "root", "--entrypoint", "sh", image, "-c",
        "id -un; find /var/lib/apt/lists /root/.cache /run/secrets -mindepth 1 2>/dev/null; true",
    ).stdout  # fmt: skip
    user = stack.podman("run", "--rm", "--no-healthcheck", "--entrypoint", "id", image, "-un").stdout.strip()
    health = stack.podman("healthcheck", "run", stack.container("web"), check=False)

    assert size < 400 * 1000 * 1000, f"the image is {size / 1e6:.0f} MB"
    assert user == "app"
    assert leftovers.split() == ["root"], leftovers
    assert health.returncode == 0, health.stdout + health.stderr
