"""Coverage-guided fuzzing (atheris / libFuzzer) of the Telegram webhook route, end to end.

    python -m soak.atheris_webhook -max_total_time=60 CORPUS_DIR

The real app (aiohttp, the connector, group-commit ingest) runs on an in-memory embedded
database in a background thread; each input is POSTed as a correctly signed webhook body.
Any 5xx, a non-JSON answer, or a store change for a refused or ignored update is a crash.
The corpus starts from the real fixtures in tests/fixtures/telegram/inbound.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["connectors", "inbox", "web"]):
    from connectors.telegram.sandbox import SECRET_HEADER
    from inbox.embedded import EmbeddedServer
    from inbox.secrets import CredentialBox
    from web.app import create_app
    from web.runtime import start_services
    from web.settings import load_settings

from aiohttp.test_utils import TestClient, TestServer
from bson import ObjectId

from tests.chaos import FIXTURES, LoopThread

SECRET = "atheris-webhook-secret"  # noqa: S105 - a test secret
BOT_TOKEN = "7000000001:AAtest-sandbox-token-0123456789abcdef"  # noqa: S105
KEY = "atheris-secret-key-not-for-production"


class Harness:
    def __init__(self) -> None:
        self.loop = LoopThread()
        self.tmp = Path(tempfile.mkdtemp(prefix="sb-atheris-"))
        self.loop.run(self._start())

    async def _start(self) -> None:
        self.server = EmbeddedServer(data_dir=None, storage=":memory:", sync_on_commit=False)
        self.server.spawn()
        await self.server.wait_ready()
        settings = load_settings(database={"name": "atheris", "data_dir": self.tmp},
                                 security={"secret_key": KEY},
                                 delivery={"workers": 0})
        self.services = await start_services(settings, self.server.uri)
        account = ObjectId()
        await self.services.db.accounts.insert_one({
            "_id": account, "platform": "telegram", "name": "fuzz", "mode": "webhook",
            "webhook_secret": SECRET, "platform_id": "7000000001",
            "credentials": CredentialBox(KEY).seal({"bot_token": BOT_TOKEN})})
        self.url = f"/webhooks/telegram/{account}"
        self.client = TestClient(TestServer(create_app(self.services)))
        await self.client.start_server()

    async def _counts(self) -> tuple[int, int, int]:
        db = self.services.db
        return (await db.messages.count_documents({}),
                await db.conversations.count_documents({}),
                await db.contacts.count_documents({}))

    async def _one(self, body: bytes) -> None:
        before = await self._counts()
        resp = await self.client.post(self.url, data=body, headers={
            SECRET_HEADER: SECRET, "Content-Type": "application/json"})
        text = await resp.text()
        if resp.status >= 500 or resp.content_type != "application/json":
            raise AssertionError(f"{resp.status} {text[:300]!r} for {body[:300]!r}")
        after = await self._counts()
        stored = resp.status == 200 and '"ignored"' not in text
        if not stored and after != before:
            raise AssertionError(f"{resp.status} but the store changed {before} -> {after}")
        if stored:
            grew = [a - b for a, b in zip(after, before, strict=True)]
            if not all(g in (0, 1) for g in grew) or (grew[1] and not grew[0]):
                raise AssertionError(f"a partial write: {before} -> {after}")

    def test_one_input(self, data: bytes) -> None:
        self.loop.run(self._one(data), timeout=60)


def main(argv: list[str]) -> None:
    corpus = next((Path(a) for a in argv[1:] if not a.startswith("-")), None)
    if corpus is not None:
        corpus.mkdir(parents=True, exist_ok=True)
        for fixture in (FIXTURES).glob("*.json"):
            if not fixture.name.endswith(".expected.json"):
                shutil.copy(fixture, corpus / fixture.name)
    harness = Harness()
    test: Any = harness.test_one_input
    atheris.Setup(argv, test)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
