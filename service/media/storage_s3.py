"""S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, Aliyun OSS's S3 endpoint) via boto3.

boto3 is blocking, so every call runs in a thread. Large transfers use boto3's managed
transfers (multipart, streamed from and to local files), so memory stays flat.

A resumable upload is an S3 multipart upload: each tus PATCH appends bytes, which are cut into
parts of `part_size` (S3 wants at least 5 MiB for every part but the last). Bytes that do not
fill a part when a PATCH ends are kept in a small `<key>.tail` object, read back by the next
PATCH (on whichever machine it lands) and sent as the last part when the upload completes.
The multipart upload id and the parts' ETags are the state stored with the upload in Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from service.config import Settings
from service.media.storage import PLAYBACK_URL_SECONDS

PART_SIZE = 8 * 1024 * 1024
MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in MISSING


class _MultipartAppender:
    def __init__(self, storage: S3Storage, key: str, state: Mapping[str, Any], tail: bytes) -> None:
        self.storage = storage
        self.key = key
        self.upload_id: str | None = state.get("uploadId")
        self.parts: list[dict[str, Any]] = list(state.get("parts", []))
        self.committed_parts = len(self.parts)
        self.had_tail = bool(state.get("tail"))
        self.buffer = bytearray(tail)

    async def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        if len(self.buffer) >= self.storage.part_size:
            data, self.buffer = bytes(self.buffer), bytearray()
            await self._upload_part(data)

    async def _upload_part(self, data: bytes) -> None:
        s3, bucket, key = self.storage.client, self.storage.bucket, self.storage.full(self.key)
        if self.upload_id is None:
            created = await asyncio.to_thread(s3.create_multipart_upload, Bucket=bucket, Key=key)
            self.upload_id = str(created["UploadId"])
        number = len(self.parts) + 1
        answer = await asyncio.to_thread(
            s3.upload_part,
            Bucket=bucket,
            Key=key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
        )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def commit(self) -> dict[str, Any]:
        tail_key = self.storage.full(self.key + ".tail")
        s3, bucket = self.storage.client, self.storage.bucket
        if self.buffer:
            data = bytes(self.buffer)
            await asyncio.to_thread(s3.put_object, Bucket=bucket, Key=tail_key, Body=data)
        elif self.had_tail:
            await asyncio.to_thread(s3.delete_object, Bucket=bucket, Key=tail_key)
        return {"uploadId": self.upload_id, "parts": self.parts, "tail": len(self.buffer)}

    async def rollback(self) -> None:
        """Parts uploaded by this request are left out of the state; the next request reuses
        their numbers (S3 keeps the last part uploaded under a number), and completion lists
        only the parts in the state."""
        self.buffer = bytearray()
        self.parts = self.parts[: self.committed_parts]
        if self.upload_id is not None and not self.parts:
            with contextlib.suppress(ClientError):
                await asyncio.to_thread(
                    self.storage.client.abort_multipart_upload,
                    Bucket=self.storage.bucket,
                    Key=self.storage.full(self.key),
                    UploadId=self.upload_id,
                )


class S3Storage:
    """Blobs as objects under `s3://bucket/prefix`; local disk only for staging and temp copies."""

    def __init__(self, client: Any, bucket: str, prefix: str, staging_root: Path) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = PART_SIZE
        self.staging_root = staging_root.resolve()
        (self.staging_root / "staging").mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(
        cls, settings: Settings, bucket: str, prefix: str, staging_root: Path
    ) -> S3Storage:
        endpoint = settings.aws_endpoint_url
        config = Config(
            s3={"addressing_style": "path" if endpoint else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            # S3-compatible services (R2, OSS, older MinIO) reject the newer default checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            region_name=settings.aws_region,
            config=config,
        )
        return cls(client, bucket, prefix, staging_root)

    def full(self, key: str) -> str:
        if ".." in key.split("/"):
            raise ValueError(f"storage key escapes the prefix: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def staging_path(self) -> Path:
        return self.staging_root / "staging" / uuid.uuid4().hex

    async def adopt(self, staged: Path, key: str) -> None:
        def upload() -> None:
            try:
                self.client.upload_file(str(staged), self.bucket, self.full(key))
            finally:
                staged.unlink(missing_ok=True)

        await asyncio.to_thread(upload)

    @contextlib.asynccontextmanager
    async def local_file(self, key: str) -> AsyncIterator[Path]:
        path = self.staging_path()
        try:
            try:
                await asyncio.to_thread(
                    self.client.download_file, self.bucket, self.full(key), str(path)
                )
            except ClientError as exc:
                if _missing(exc):
                    raise FileNotFoundError(key) from None
                raise
            yield path
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=self.full(key))
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    async def playable(self, key: str, content_type: str) -> Path | str:
        if not await self.exists(key):
            raise FileNotFoundError(key)
        params = {
            "Bucket": self.bucket,
            "Key": self.full(key),
            "ResponseContentType": content_type,
            "ResponseContentDisposition": "inline",
        }
        return str(
            await asyncio.to_thread(
                self.client.generate_presigned_url,
                "get_object",
                Params=params,
                ExpiresIn=PLAYBACK_URL_SECONDS,
            )
        )

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self.full(key))

    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(
            self.client.put_object, Bucket=self.bucket, Key=self.full(key), Body=data
        )

    async def get_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self.full(key))
            except ClientError as exc:
                if _missing(exc):
                    raise FileNotFoundError(key) from None
                raise
            return bytes(answer["Body"].read())

        return await asyncio.to_thread(read)

    async def append(self, key: str, state: Mapping[str, Any], offset: int) -> _MultipartAppender:
        tail = await self.get_bytes(key + ".tail") if state.get("tail") else b""
        return _MultipartAppender(self, key, state, tail)

    async def finish_append(self, key: str, state: Mapping[str, Any]) -> None:
        try:
            await self._complete(key, state)
        except (ClientError, FileNotFoundError) as exc:
            missing = isinstance(exc, FileNotFoundError) or _missing(exc)
            if not (missing and await self.exists(key)):
                raise
            # finished already (a completion retried after a crash)

    async def _complete(self, key: str, state: Mapping[str, Any]) -> None:
        appender = await self.append(key, state, 0)
        if appender.upload_id is None:
            await self.put_bytes(key, bytes(appender.buffer))
        else:
            if appender.buffer:
                await appender._upload_part(bytes(appender.buffer))
            await asyncio.to_thread(
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=self.full(key),
                UploadId=appender.upload_id,
                MultipartUpload={"Parts": appender.parts},
            )
        if state.get("tail"):
            await self.delete(key + ".tail")

    async def abort_append(self, key: str, state: Mapping[str, Any]) -> None:
        upload_id = state.get("uploadId")
        if upload_id:
            with contextlib.suppress(ClientError):
                await asyncio.to_thread(
                    self.client.abort_multipart_upload,
                    Bucket=self.bucket,
                    Key=self.full(key),
                    UploadId=upload_id,
                )
        await self.delete(key + ".tail")
