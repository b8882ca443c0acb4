"""The benchmark's second server process gets a port even when another process took the one
it was given first (the suite runs servers side by side), and says why when it cannot start."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

import bench.cluster
from bench.cluster import Cluster


@pytest.mark.timeout(180)
async def test_a_joined_process_tries_another_port_when_its_own_is_taken(
        mongo_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    given: list[int] = []
    real = bench.cluster.free_port

    def ports() -> Iterator[int]:
        yield busy
        while True:
            yield real()

    chosen = ports()

    def free_port() -> int:
        given.append(next(chosen))
        return given[-1]

    try:
        async with Cluster(mongodb_uri=mongo_uri) as cluster:
            monkeypatch.setattr(bench.cluster, "free_port", free_port)
            child = await cluster.start_joined({"SWITCHBOARD_DELIVERY__WORKERS": "0"})
            try:
                assert child.process.poll() is None
                assert len(given) == 2 and given[0] == busy
                log = (cluster.workdir / f"joined-{busy}.log").read_text()
                assert "address already in use" in log
            finally:
                await asyncio.to_thread(child.stop)
    finally:
        taken.close()


@pytest.mark.timeout(120)
async def test_a_joined_process_that_cannot_start_is_reported_with_its_log(
        mongo_uri: str) -> None:
    async with Cluster(mongodb_uri=mongo_uri) as cluster:
        cluster.server_env = {"SWITCHBOARD_SERVER__MAX_BODY_BYTES": "not a number"}
        with pytest.raises(RuntimeError, match=r"exit 2\).*max_body_bytes"):
            await cluster.start_joined({})
