"""A local S3-compatible server for tests: moto in server mode, on a free port of this machine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from service.config import Settings
from service.media.storage_s3 import S3Storage
from tests.server import free_port

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    url: str

    def env(self, bucket: str, prefix: str = "tapeline") -> dict[str, str]:
        """Variables that point a `tapeline` process at this server."""
        return {
            "STORAGE_URL": f"s3://{bucket}/{prefix}",
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def new_bucket(self) -> str:
        bucket = f"tapeline-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def storage(self, settings: Settings, staging: Path, part_size: int | None = None) -> S3Storage:
        bucket = self.new_bucket()
        s3_settings = settings.model_copy(
            update={
                "aws_endpoint_url": self.url,
                "aws_access_key_id": ACCESS_KEY,
                "aws_secret_access_key": SECRET_KEY,
                "aws_region": REGION,
            }
        )
        storage = S3Storage.from_settings(s3_settings, bucket, "prefix", staging)
        if part_size is not None:
            storage.part_size = part_size
        return storage


@contextmanager
def moto_server() -> Iterator[S3Endpoint]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Endpoint(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
