"""Files Switchboard keeps itself (an email's attachments): GridFS in the same database.

Platforms such as Telegram and Slack keep a message's files and we fetch them on demand with the
account's credentials; a mailbox does not (the mail may be deleted or moved), so the email
connector stores each part here while ingesting, and the attachment route serves it from here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket, NoFile

from inbox.db import Database
from inbox.store import NotFound

CHUNK = 255 * 1024


@dataclass(frozen=True, slots=True)
class BlobInfo:
    id: str
    name: str | None
    mime: str | None
    size: int
    account_id: str | None


class Blobs:
    def __init__(self, db: Database) -> None:
        self.bucket = AsyncGridFSBucket(db, bucket_name="blobs", chunk_size_bytes=CHUNK)

    async def put(self, data: bytes, *, name: str | None, mime: str | None,
                  account_id: str | None = None) -> str:
        blob_id = await self.bucket.upload_from_stream(
            name or "file", data, metadata={"mime": mime, "account_id": account_id})
        return str(blob_id)

    async def open(self, blob_id: str) -> tuple[BlobInfo, AsyncIterator[bytes]]:
        try:
            stream = await self.bucket.open_download_stream(ObjectId(blob_id))
        except (InvalidId, TypeError, NoFile) as exc:
            raise NotFound(blob_id) from exc
        meta = stream.metadata or {}
        info = BlobInfo(id=blob_id, name=stream.filename, mime=meta.get("mime"),
                        size=int(stream.length), account_id=meta.get("account_id"))

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    data = await stream.readchunk()
                    if not data:
                        return
                    yield data
            finally:
                await stream.close()

        return info, chunks()

    async def delete(self, blob_id: str) -> None:
        try:
            await self.bucket.delete(ObjectId(blob_id))
        except (InvalidId, NoFile):
            return
