"""Process start-up and shutdown: database (embedded or URI), services, background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from pymongo.errors import PyMongoError

from inbox.db import connect
from inbox.embedded import EmbeddedError, EmbeddedServer, running_server_uri
from web import gc_pauses
from web.app import Services, build_services, create_app
from web.processes import Children
from web.settings import ConfigError, Settings, ensure_secret_key

log = logging.getLogger(__name__)

HEALTH_EVERY = 1.0
# A stopped (SIGSTOP) or wedged database accepts the connection and never answers, and the
# client has no socket timeout: without this bound the ping would wait forever and /healthz
# would say "ok" for as long as the database hangs (measured: ~13 s until the client's own
# monitor gave up).
PING_TIMEOUT = 2.0


class StartupError(Exception):
    """Start-up cannot go on; the message is one line for the operator."""


@asynccontextmanager
async def database(settings: Settings, *, reuse_running: bool = False,
                   ) -> AsyncIterator[tuple[str, EmbeddedServer | None]]:
    """The database URI to use, starting the embedded server for the data dir if needed.

    With `reuse_running`, a CLI command borrows the database of a Switchboard already running on
    the same data dir instead of failing on its lock.
    """
    if settings.database.uri:
        yield settings.database.uri, None
        return
    data_dir = settings.database.data_dir
    if reuse_running:
        uri = running_server_uri(data_dir)
        if uri:
            yield uri, None
            return
    server = EmbeddedServer(data_dir=data_dir)
    try:
        await server.start()
    except EmbeddedError as exc:
        await server.stop()
        raise StartupError(f"database.data_dir: {exc}") from None
    try:
        yield server.uri, server
    finally:
        await server.stop()


async def start_services(settings: Settings, uri: str,
                         embedded: EmbeddedServer | None = None) -> Services:
    from inbox.changes import ChangeFeed
    from replies.outbox import Outbox
    from replies.worker import DeliveryWorker

    client = connect(uri)
    try:
        await client.admin.command("ping")
    except PyMongoError as exc:
        await client.close()
        raise StartupError(f"database.uri: cannot reach the database ({type(exc).__name__})")\
            from None
    services = build_services(settings, client, ensure_secret_key(settings))
    services.health.embedded = embedded
    await services.store.setup()
    await services.clock.sync()
    services.outbox = Outbox(services.db, settings.delivery, clock=services.clock)
    await services.outbox.setup()
    services.router.on_report = services.outbox.apply_report
    # one change stream for the whole process: every follower below subscribes to it
    services.changes = feed = ChangeFeed(services.db, FOLLOWED)
    await feed.start()
    services.worker = DeliveryWorker(
        services.outbox, services.channels.get,
        unavailable=lambda: services.accounts.unavailable(services.clock.now()), feed=feed)
    if settings.delivery.workers > 0:
        await services.worker.start()
    await services.channels.start_all()
    services.teams.router.feed = services.teams.indexer.feed = feed
    services.teams.indexer.acks = services.measures.acks = services.store.ingestor.acks
    await services.teams.start()
    services.measures.outbox = services.outbox
    services.measures.feed = feed
    await services.measures.start()
    if services.answers is not None:
        await services.answers.start(services.outbox, services.channels.get,
                                     services.teams.assigner.queue)
    services.background.append(asyncio.create_task(watch_health(services)))
    return services


# what the process's followers read: the event hub (conversations, messages, presence), the
# delivery worker (outbox), the router (conversations), the search indexer (messages) and the
# service measures (messages, interactions, conversations and SLA clocks)
FOLLOWED = ("conversations", "messages", "presence", "outbox", "interactions", "sla_timers")
STOP_WITHIN = 15.0  # s: the longest one component's stop may take before shutdown goes on
STACK_FRAMES = 8  # of each task a stop that hangs is waiting for, in its log line


async def _stop(what: str, stop: Any) -> None:
    """Run one component's stop, bounded: a stop that hangs (a task that will not end) is
    logged and left behind, so shutdown — and the rest of the stops — always complete."""
    task = asyncio.create_task(stop, name=f"stop {what}")
    done, _ = await asyncio.wait({task}, timeout=STOP_WITHIN)
    if not done:
        log.error("%s did not stop within %.0f s; shutting down without it; still waiting:\n%s",
                  what, STOP_WITHIN, _where_stuck(task))
        task.cancel()
        return
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed to stop: %r", what, task.exception())


def _where_stuck(stop: asyncio.Task[Any]) -> str:
    """Where a stop that ran out of time waits, and every task asked to end that has not (a
    task that swallows its cancellation is what makes a stop hang)."""
    stuck = [stop, *(t for t in asyncio.all_tasks() if t.cancelling() and not t.done())]
    out = io.StringIO()
    for t in stuck:
        out.write(f"task {t.get_name()}:\n")
        t.print_stack(limit=STACK_FRAMES, file=out)
    return out.getvalue()


async def stop_services(services: Services) -> None:
    for task in services.background:
        task.cancel()
    await asyncio.gather(*services.background, return_exceptions=True)
    for what, component in (("the event hub", services.events),
                            ("the standard answers", services.answers),
                            ("the service measures", services.measures),
                            ("team work", services.teams),
                            ("the delivery worker", services.worker),
                            ("the change feed", services.changes)):
        if component is not None:
            await _stop(what, component.stop())
    await _stop("the channels", services.channels.stop_all())
    if services.webhooks is not None:
        await _stop("the webhooks in flight", services.webhooks.drain())
    # write the conversation summaries still behind the acknowledged messages (inbox/summaries.py)
    await _stop("the summaries", services.store.close())
    await services.client.close()


async def watch_health(services: Services) -> None:
    """Ping the database; restart the embedded one if its process died."""
    health = services.health
    while True:
        await asyncio.sleep(HEALTH_EVERY)
        embedded = health.embedded
        if embedded is not None and not embedded.alive():
            if health.db_ok:
                log.error("the embedded database process exited (code %s); restarting it",
                          embedded.process.returncode if embedded.process else "?")
            health.db_ok = False
            health.last_error = "embedded database process exited"
            try:
                await embedded.restart()
                health.restarts += 1
            except (EmbeddedError, OSError) as exc:
                health.last_error = f"restart failed: {exc}"
                continue
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                await services.client.admin.command("ping", maxTimeMS=int(PING_TIMEOUT * 1000))
        except (PyMongoError, TimeoutError) as exc:
            reason = "no answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__
            if health.db_ok:
                log.error("database unavailable: %s", reason)
            health.db_ok = False
            health.last_error = f"ping failed: {reason}"
            continue
        if not health.db_ok:
            log.warning("database available again")
            if services.worker is not None:
                services.worker.wake()
        health.db_ok = True


async def run_app(services: Services, host: str, port: int, ready_message: str = "") -> None:
    """Serve until SIGINT/SIGTERM."""
    app = create_app(services)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # several processes may listen on one port (`serve --processes N`); the kernel spreads
    # the connections over them
    site = web.TCPSite(runner, host, port, reuse_port=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"server.port: cannot listen on {host}:{port} ({exc.strerror})")\
            from None
    gc_pauses.tune()  # what startup made is kept for good: collections no longer walk it
    Children.tell_ready()
    if ready_message:
        print(ready_message, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info("shutting down")
        await runner.cleanup()


async def serve(settings: Settings, *, extra: Any = None, processes: int = 1,
                join: str | None = None, config: Any = None) -> None:
    """Serve until SIGINT/SIGTERM; with `processes` > 1 start that many processes in all
    (web/processes.py); with `join`, be one of them on that database."""
    if join is not None:
        services = await start_services(settings, join)
        try:
            await run_app(services, settings.server.host, settings.server.port)
        finally:
            await stop_services(services)
        return
    async with database(settings) as (uri, embedded):
        services = await start_services(settings, uri, embedded)
        children = Children()
        try:
            host, port = settings.server.host, settings.server.port
            message = f"Switchboard is running on http://{host}:{port}/"
            if embedded is not None:
                message += f" (embedded database in {settings.database.data_dir})"
            if processes > 1:
                await children.start(processes - 1, uri, config)
                message += f", {processes} processes"
            if extra is not None:
                await extra(services)
            await run_app(services, host, port, message)
        finally:
            children.stop()
            await stop_services(services)


def run(coro: Any) -> int:
    """Run a coroutine; operator errors become one line on stderr and exit status 2."""
    import sys

    try:
        asyncio.run(coro)
    except (ConfigError, StartupError) as exc:
        print(f"switchboard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


with contextlib.suppress(Exception):
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
