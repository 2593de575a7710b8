"""Consumer and relay names are unique even where host and pid are not: in containers every
process is PID 1, and with host networking every container has the host's name."""

from __future__ import annotations

import os
import socket

import pytest

from eventbus.messages import registry
from eventbus.runtime import heartbeats
from eventbus.runtime.consumer import Consumer
from eventbus.runtime.relay import Relay
from eventbus.runtime.status import pipeline_status

GROUPS = ("inventory", "orders", "notifications")


@pytest.fixture
def pid_1_on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process looks like one container's among several on the host's network."""
    monkeypatch.setattr(os, "getpid", lambda: 1)
    monkeypatch.setattr(socket, "gethostname", lambda: "shop-host")


def test_two_copies_of_a_group_in_containers_have_different_names(pid_1_on_the_host, transport):
    first, second = (Consumer("inventory", transport=transport) for _ in range(2))

    assert first.name != second.name
    assert first.name.startswith("shop-host-1-")


def test_two_relays_in_containers_have_different_names(pid_1_on_the_host, transport):
    first, second = (Relay(transport=transport) for _ in range(2))

    assert first.name != second.name
    assert first.name.startswith("relay-shop-host-1-")


def test_a_name_given_on_the_command_line_is_kept(pid_1_on_the_host, transport):
    assert Consumer("orders", name="orders-a", transport=transport).name == "orders-a"


@pytest.mark.django_db
def test_status_sees_every_group_when_every_process_is_pid_1_on_one_host(pid_1_on_the_host, transport):
    assert set(GROUPS) <= set(registry.groups())
    workers = [Relay(transport=transport), *(Consumer(g, transport=transport) for g in registry.groups())]
    for worker in workers:
        heartbeats.send(transport, worker.heartbeat())

    status = pipeline_status(transport=transport)

    assert len(status.processes) == len(workers)
    assert status.relays == 1
    assert status.consumers_by_group == dict.fromkeys(registry.groups(), 1)
    assert not [p for p in status.problems if "no live consumer" in p or "relay" in p]
