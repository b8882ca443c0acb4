"""The test harness's server waits for its own answer: another process listening on the port it
picked (another test's server took it meanwhile) does not pass for it. Once, an API test module
talked for its whole run to another test's server that way and got 401 for every call."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from inbox.db import Database
from tests.chaos import Serve, free_port


async def _impostor(port: int) -> web.AppRunner:
    """A server on `port` that answers /healthz as a healthy Switchboard of another process."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "database": "ok", "process": 1})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_a_first_start_moves_off_a_port_another_server_answers_on(
        mongo_uri: str, db: Database, tmp_path: Path) -> None:
    taken = free_port()
    impostor = await _impostor(taken)
    serve = Serve(tmp_path / "data", db.name, uri=mongo_uri, port=taken)
    try:
        await serve.start()
        assert serve.port != taken
        async with aiohttp.ClientSession() as http, http.get(f"{serve.url}/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["process"] == serve.proc.pid  # type: ignore[union-attr]
        assert f"port {taken} answered by process 1" in serve.output()
    finally:
        await serve.stop()
        await impostor.cleanup()
