"""config.turns: at most N at once, the rest in arrival order, none waiting past its bound, and
no turn lost to a waiter that was cancelled."""

from __future__ import annotations

import asyncio
import time

import pytest

from config.turns import Turns


async def _hold(turns: Turns, name: str, log: list[str], release: asyncio.Event) -> None:
    await turns.take()
    log.append(name)
    try:
        await release.wait()
    finally:
        turns.give_back()


def test_at_most_n_at_once_and_the_rest_in_arrival_order():
    async def main() -> list[str]:
        turns, log, release = Turns(2, wait_s=5), [], asyncio.Event()
        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(_hold(turns, f"r{i}", log, release)))
            await asyncio.sleep(0)  # each arrives after the one before
        await asyncio.sleep(0.01)
        assert log == ["r0", "r1"], "two at once"
        assert turns.waiting == 4
        release.set()
        await asyncio.gather(*tasks)
        assert turns.free == 2, "every turn given back"
        return log

    assert asyncio.run(main()) == [f"r{i}" for i in range(6)]


def test_one_waiting_past_its_bound_is_told_so_and_the_next_still_gets_its_turn():
    async def main() -> None:
        turns, release = Turns(1, wait_s=0.1), asyncio.Event()
        holder = asyncio.create_task(_hold(turns, "holder", [], release))
        await asyncio.sleep(0)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await turns.take()
        waited = time.monotonic() - started
        assert 0.1 <= waited < 0.5, waited
        release.set()
        await holder
        await asyncio.wait_for(turns.take(), 1)  # free again
        turns.give_back()
        assert turns.free == 1
        assert turns.waiting == 0

    asyncio.run(main())


def test_a_waiter_cancelled_loses_no_turn_even_when_cancelled_as_it_is_handed_one():
    async def main() -> None:
        turns = Turns(1, wait_s=5)
        await turns.take()
        gone = asyncio.create_task(turns.take())  # its client went away while it waited
        handed = asyncio.create_task(turns.take())
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        turns.give_back()  # passes over the cancelled one
        await asyncio.wait_for(handed, 1)
        # Handed a turn and cancelled before it ran: the turn goes on to the next.
        late = asyncio.create_task(turns.take())
        following = asyncio.create_task(turns.take())
        await asyncio.sleep(0)
        turns.give_back()  # `handed` ends: `late` is handed the turn ...
        late.cancel()  # ... and cancelled before it could use it
        with pytest.raises(asyncio.CancelledError):
            await late
        await asyncio.wait_for(following, 1)
        turns.give_back()
        assert turns.free == 1
        assert turns.waiting == 0

    asyncio.run(main())
