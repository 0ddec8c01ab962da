"""The daemon's own tasks: each one it cancels has ended before the daemon goes on, and a
cancellation aimed at the daemon reaches it."""

import asyncio

import pytest

from pispeaker.audio.ports import DeviceLostError
from pispeaker.config import Config
from pispeaker.service.daemon import Daemon
from pispeaker.service.systemd import Notifier


def daemon() -> Daemon:
    return Daemon(Config, {}, Notifier({}))


async def test_a_watched_task_that_fails_is_raised_and_the_signal_wait_has_ended() -> None:
    async def lose_the_microphone() -> None:
        raise DeviceLostError("microphone gone")

    failing = asyncio.create_task(lose_the_microphone(), name="watchdog")
    with pytest.raises(DeviceLostError):
        await daemon()._next_request({failing})
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_the_wait_for_a_signal_propagates_and_leaves_no_task() -> None:
    waiting = asyncio.create_task(daemon()._next_request(set()))
    await asyncio.sleep(0)  # one turn of the loop: the wait has started its signal task
    assert len(asyncio.all_tasks()) == 3
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert asyncio.all_tasks() == {asyncio.current_task()}
