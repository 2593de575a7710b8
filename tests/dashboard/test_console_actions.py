"""The console's Replay and Discard buttons: a POST with the CSRF token the page hands its
script, from staff only, acting on one row's dead letters (a group and an error) through the
event bus's own services. A replay lands on the group's replay stream, as `manage.py
deadletters replay` does (tests/resilience/test_replay.py follows it to resolution)."""

from __future__ import annotations

import re

import pytest
from django.http import HttpResponse
from django.test import Client

from eventbus.models import DeadLetter
from eventbus.redis.transport import Message, Transport
from eventbus.store.deadletters import REPLAY_FIELD, deadletter_record, fields_as_text
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

REPLAY, DISCARD = "/ops/deadletters/replay", "/ops/deadletters/discard"


def dead_letter(group: str, error: str, message_id: str) -> DeadLetter:
    fields = {b"type": b"orders.OrderPlaced", b"event": b'{"id": "%s"}' % message_id.encode()}
    message = Message("orders", message_id, fields)
    return deadletter_record(group=group, message=message, error=error, traceback="", attempts=5)


@pytest.fixture
def letters() -> dict[str, DeadLetter]:
    """Two letters of one console row, and one each of its neighbours (another error, another group)."""
    return {
        "one": dead_letter("inventory", "IntegrityError: boom", "1-0"),
        "two": dead_letter("inventory", "IntegrityError: boom", "2-0"),
        "other error": dead_letter("inventory", "ValueError: no such product", "3-0"),
        "other group": dead_letter("notifications", "IntegrityError: boom", "4-0"),
    }


def statuses(letters: dict[str, DeadLetter]) -> dict[str, str]:
    return {name: DeadLetter.objects.get(pk=letter.pk).status for name, letter in letters.items()}


def replayed_ids(transport: Transport, group: str) -> list[int]:
    entries = transport.client.xrange(transport.key(Transport.replay_stream(group)))
    return sorted(int(fields_as_text(fields)[REPLAY_FIELD]) for _, fields in entries)


class Console:
    """Staff on the console page, posting the way its script does: the token from the page."""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(StaffFactory())
        page = self.client.get("/ops/").content.decode()
        self.token = re.search(r'data-csrf-token="([^"]+)"', page).group(1)

    def post(self, url: str, **fields: str) -> HttpResponse:
        return self.client.post(url, fields, HTTP_X_CSRFTOKEN=self.token, HTTP_ACCEPT="application/json")


@pytest.fixture
def console() -> Console:
    return Console()


def test_replay_sends_the_rows_dead_letters_to_their_groups_replay_stream(console, letters, transport):
    response = console.post(REPLAY, group="inventory", error="IntegrityError: boom")

    assert (response.status_code, response.json()) == (200, {"replayed": 2})
    assert statuses(letters) == {"one": "replayed", "two": "replayed", "other error": "dead", "other group": "dead"}
    assert replayed_ids(transport, "inventory") == sorted([letters["one"].pk, letters["two"].pk])
    assert replayed_ids(transport, "notifications") == []


def test_a_replayed_message_carries_the_dead_letters_fields(console, letters, transport):
    console.post(REPLAY, group="notifications", error="IntegrityError: boom")

    [(_, fields)] = transport.client.xrange(transport.key(Transport.replay_stream("notifications")))

    assert fields_as_text(fields) == {**letters["other group"].fields, REPLAY_FIELD: str(letters["other group"].pk)}


def test_discard_discards_the_rows_dead_letters_and_replays_nothing(console, letters, transport):
    response = console.post(DISCARD, group="inventory", error="IntegrityError: boom")

    assert (response.status_code, response.json()) == (200, {"discarded": 2})
    assert statuses(letters) == {"one": "discarded", "two": "discarded", "other error": "dead", "other group": "dead"}
    assert replayed_ids(transport, "inventory") == []


def test_a_row_already_replayed_is_not_replayed_again(console, letters, transport):
    console.post(REPLAY, group="inventory", error="IntegrityError: boom")

    response = console.post(REPLAY, group="inventory", error="IntegrityError: boom")

    assert response.json() == {"replayed": 0}
    assert len(replayed_ids(transport, "inventory")) == 2


@pytest.mark.parametrize("url", [REPLAY, DISCARD])
def test_without_the_csrf_token_nothing_is_done(url, console, letters, transport):
    response = console.client.post(url, {"group": "inventory", "error": "IntegrityError: boom"})

    assert response.status_code == 403
    assert set(statuses(letters).values()) == {"dead"}
    assert replayed_ids(transport, "inventory") == []


@pytest.mark.parametrize("url", [REPLAY, DISCARD])
def test_a_get_does_nothing(url, console, letters):
    response = console.client.get(url, {"group": "inventory", "error": "IntegrityError: boom"})

    assert response.status_code == 405
    assert set(statuses(letters).values()) == {"dead"}


@pytest.mark.parametrize("who", ["anonymous", "customer"])
@pytest.mark.parametrize("url", [REPLAY, DISCARD])
def test_only_staff_may_replay_or_discard(url, who, customer, letters, transport):
    client = Client()  # CSRF checks off: the refusal here is for who asks, not how
    if who == "customer":
        client.force_login(customer)

    response = client.post(url, {"group": "inventory", "error": "IntegrityError: boom"})

    assert (response.status_code, response.json()["code"]) == (403, "not_staff")
    assert set(statuses(letters).values()) == {"dead"}
    assert replayed_ids(transport, "inventory") == []


def test_a_replay_while_redis_is_down_says_so_and_leaves_the_letters_dead(console, letters, redis_down):
    response = console.post(REPLAY, group="inventory", error="IntegrityError: boom")

    assert response.status_code == 503
    assert response.json()["detail"].startswith("Redis is unreachable, nothing was replayed")
    assert set(statuses(letters).values()) == {"dead"}
