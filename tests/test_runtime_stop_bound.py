"""A component whose stop hangs is left behind after STOP_WITHIN, and the log says where it
waits: the stop itself and the task that was asked to end and did not."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

import web.runtime
from inbox.tasks import cancel_and_wait


class Stubborn:
    """A component whose background task swallows its cancellation until told to end."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name="stubborn-follower")

    async def _run(self) -> None:
        while not self.release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await self.release.wait()

    async def stop(self) -> None:
        await cancel_and_wait([self.task])


async def test_a_stop_that_hangs_is_bounded_and_says_where_it_waits(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(web.runtime, "STOP_WITHIN", 0.3)
    component = Stubborn()
    await asyncio.sleep(0)
    caplog.set_level(logging.ERROR, logger="web.runtime")
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await web.runtime._stop("the stubborn follower", component.stop())
        assert loop.time() - started < 2.0
    finally:
        component.release.set()
        await asyncio.wait_for(component.task, 2.0)
    [record] = [r for r in caplog.records if "did not stop" in r.getMessage()]
    message = record.getMessage()
    assert message.startswith("the stubborn follower did not stop within 0 s")
    assert "task stop the stubborn follower:" in message
    assert "wait_for=<Task cancelling name='stubborn-follower'" in message
    assert "task stubborn-follower:" in message
    assert "in stop\n" in message and "in _run\n" in message


async def test_a_stop_that_ends_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    component = Stubborn()
    component.release.set()
    caplog.set_level(logging.ERROR, logger="web.runtime")
    await web.runtime._stop("a quiet follower", component.stop())
    assert component.task.done()
    assert not [r for r in caplog.records if r.name == "web.runtime"]
