"""CallEnd, a call's end event: its timed wait (a <Pause>) returns on the end or on the timer,
whichever comes first, and leaves nothing behind."""

from __future__ import annotations

import asyncio

import pytest

from siptwin.regions.node import CallEnd


async def test_a_timed_wait_returns_when_the_call_ends() -> None:
    ended = CallEnd()
    waiting = asyncio.ensure_future(ended.wait_at_most(3600, asyncio.get_running_loop()))
    await asyncio.sleep(0)
    assert not waiting.done()
    ended.set()
    await asyncio.wait_for(waiting, 5)
    assert ended.is_set()
    assert ended._wakers == []


async def test_a_timed_wait_returns_on_its_timer() -> None:
    ended = CallEnd()
    await asyncio.wait_for(ended.wait_at_most(0.01, asyncio.get_running_loop()), 5)
    assert not ended.is_set()
    assert ended._wakers == []
    ended.set()  # (nothing left to wake)


async def test_a_timed_wait_on_an_ended_call_returns_at_once() -> None:
    ended = CallEnd()
    ended.set()
    await ended.wait_at_most(3600, asyncio.get_running_loop())
    assert ended._wakers is None  # (no future made)


async def test_every_timed_wait_and_plain_wait_is_woken() -> None:
    ended = CallEnd()
    loop = asyncio.get_running_loop()
    waits = [asyncio.ensure_future(ended.wait_at_most(3600, loop)) for _ in range(3)]
    plain = asyncio.ensure_future(ended.wait())
    await asyncio.sleep(0)
    ended.set()
    await asyncio.wait_for(asyncio.gather(*waits, plain), 5)
    assert plain.result() is True


async def test_a_cancelled_timed_wait_is_forgotten() -> None:
    ended = CallEnd()
    waiting = asyncio.ensure_future(ended.wait_at_most(3600, asyncio.get_running_loop()))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert ended._wakers == []
    ended.set()
