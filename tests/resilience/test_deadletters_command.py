"""`manage.py deadletters list|show|replay|discard`: what operators see and do."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from eventbus.models import DeadLetter
from tests.factories import ProductFactory
from tests.resilience.flaky import Flaky

pytestmark = pytest.mark.django_db(transaction=True)


def deadletters(*args: str) -> str:
    out = StringIO()
    call_command("deadletters", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def refused(handler, publish_flaky, consumer) -> DeadLetter:
    """A Flaky event the inventory handler refused."""
    product = ProductFactory(stock=0)
    handler.refuse(product)
    publish_flaky(product)
    consumer("inventory").run(once=True)
    return DeadLetter.objects.get()


@pytest.fixture
def garbled(transport, relay, consumer) -> dict[str, DeadLetter]:
    """One message that is not JSON, dead-lettered by both groups reading its stream."""
    relay()  # the groups exist before the message arrives
    transport.publish([("orders", {"type": Flaky.type, "event": "{not json"})])
    consumer("inventory").run(once=True)
    consumer("notifications").run(once=True)
    return {row.consumer_group: row for row in DeadLetter.objects.all()}


def test_list_shows_each_open_dead_letter_with_its_group_type_attempts_and_error(refused):
    lines = deadletters("list").splitlines()

    assert lines[0].split() == ["ID", "GROUP", "TYPE", "TRIES", "STATUS", "LAST", "FAILURE", "ERROR"]
    assert lines[1].split()[:5] == [str(refused.pk), "inventory", Flaky.type, "1", "dead"]
    assert lines[1].endswith(refused.error)
    assert len(lines) == 2


def test_list_with_a_group_shows_only_that_groups_dead_letters(garbled):
    listed = deadletters("list", "--group", "notifications").splitlines()[1:]

    assert [line.split()[:2] for line in listed] == [[str(garbled["notifications"].pk), "notifications"]]


def test_list_leaves_out_resolved_and_discarded_ones_unless_asked(refused):
    deadletters("discard", str(refused.pk))

    assert deadletters("list").strip() == "no dead letters"
    assert deadletters("list", "--status", "all").splitlines()[1].split()[:5] == [
        str(refused.pk), "inventory", Flaky.type, "1", "discarded",
    ]  # fmt: skip


def test_show_prints_everything_about_one_dead_letter(refused):
    out = deadletters("show", str(refused.pk))

    for label, value in [
        ("group", "inventory"),
        ("stream", "orders"),
        ("message id", refused.message_id),
        ("event id", str(refused.event_id)),
        ("event type", Flaky.type),
        ("status", "dead"),
        ("attempts", "1"),
        ("error", refused.error),
    ]:
        assert f"{label:>14}: {value}\n" in out
    product_id = json.loads(refused.fields["event"])["payload"]["product_id"]
    assert f'"product_id": {product_id}' in out, "the envelope, pretty-printed"
    assert "     traceback:\n" in out
    assert "raise Refused(" in out


def test_discard_gives_up_on_a_dead_letter_for_good(refused, transport):
    assert deadletters("discard", str(refused.pk)).strip() == "discarded 1 dead letter(s)"

    row = DeadLetter.objects.get()
    assert row.status == DeadLetter.Status.DISCARDED
    assert row.resolved_at is not None
    assert deadletters("replay", "--all").startswith("replayed 0 dead letter(s)")
    assert transport.stream_length("eventbus:replay:inventory") == 0


def test_replay_with_a_group_replays_only_that_groups_dead_letters(garbled, transport):
    deadletters("replay", "--group", "notifications")

    garbled_now = {row.consumer_group: row.status for row in DeadLetter.objects.all()}
    assert garbled_now == {"notifications": DeadLetter.Status.REPLAYED, "inventory": DeadLetter.Status.DEAD}
    assert transport.stream_length("eventbus:replay:notifications") == 1
    assert transport.stream_length("eventbus:replay:inventory") == 0


def test_discard_all_discards_every_open_dead_letter(garbled):
    assert deadletters("discard", "--all").strip() == "discarded 2 dead letter(s)"

    assert set(DeadLetter.objects.values_list("status", flat=True)) == {DeadLetter.Status.DISCARDED}


@pytest.mark.parametrize("action", ["replay", "discard"])
def test_an_unknown_id_is_refused_naming_it_and_nothing_is_done(refused, action):
    with pytest.raises(CommandError, match=r"^no dead letter with id 999999$"):
        deadletters(action, str(refused.pk), "999999")

    assert DeadLetter.objects.get().status == DeadLetter.Status.DEAD


def test_show_of_an_unknown_id_says_where_to_look():
    with pytest.raises(CommandError, match=r"no dead letter with id 999999: see `manage.py deadletters list"):
        deadletters("show", "999999")


@pytest.mark.parametrize("action", ["replay", "discard"])
@pytest.mark.parametrize(
    "selection", [[], ["--all", "--group", "inventory"], ["1", "--all"]], ids=["none", "two", "ids-and-all"]
)
def test_replay_and_discard_need_exactly_one_selection(action, selection):
    with pytest.raises(CommandError, match=r"^say which dead letters: give IDs, or --group NAME, or --all$"):
        deadletters(action, *selection)
