"""API tokens: created by `tapeline token create NAME`, stored as SHA-256 hashes only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from service.database import Row
from service.queries import q

TOKEN_PREFIX = "tl_"
WEBHOOK_SECRET_PREFIX = "whsec_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an owner name, or the admin (who sees everyone's runs)."""

    owner: str
    is_admin: bool = False
    token_id: uuid.UUID | None = None
    webhook_url: str | None = None

    @property
    def scope(self) -> str | None:
        """The owner filter for queries: None lets the admin see every owner's rows."""
        return None if self.is_admin else self.owner


ADMIN = Principal(owner="admin", is_admin=True)

RESERVED_OWNERS = frozenset(
    {"admin", "administrator", "root", "system", "tapeline", "anonymous", "owner"}
)
"""Owner names no ordinary token may act as: `admin` is the admin's own namespace, `owner` the
owner token's (an admin token a fresh install creates), the rest look like them."""


def is_reserved_owner(owner: str) -> bool:
    return owner.strip().casefold() in RESERVED_OWNERS


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_admin_token(presented: str, admin_token: str | None) -> bool:
    return bool(admin_token) and hmac.compare_digest(presented.encode(), str(admin_token).encode())


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


async def create(
    conn: AsyncConnection, owner: str, *, webhook_url: str | None = None
) -> tuple[str, Row]:
    """A new token for `owner`; the plain token is returned once and never stored. The row
    carries the token's webhook secret, which the caller shows once too."""
    if is_reserved_owner(owner):
        raise ValueError(f"{owner!r} is a reserved owner name; choose another.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    params = {
        "owner": owner,
        "token_hash": hash_token(token),
        "token_prefix": token[:10],
        "webhook_url": webhook_url,
        "webhook_secret": new_webhook_secret(),
    }
    row = (await conn.execute(q("insert_token"), params)).mappings().one()
    return token, row


async def find(conn: AsyncConnection, token: str) -> Principal | None:
    """Who a presented token belongs to, with its default webhook URL, if it is valid."""
    row = (
        (await conn.execute(q("find_token"), {"token_hash": hash_token(token)})).mappings().first()
    )
    if row is None:
        return None
    return Principal(
        owner=row["owner"],
        token_id=row["id"],
        webhook_url=row["webhook_url"],
        is_admin=bool(row["is_admin"]),
    )


async def rotate_webhook_secret(conn: AsyncConnection, key: str) -> list[Row]:
    """New webhook secrets for the active tokens matching `key` (owner name, id or prefix);
    the old secret still signs, next to the new one, for a day."""
    rows = (await conn.execute(q("rotate_webhook_secret"), {"key": key})).mappings().all()
    return list(rows)


OWNER = "owner"
"""Who the owner token of a fresh install acts as (`tapeline token list` shows it)."""


async def create_owner_token(conn: AsyncConnection) -> str | None:
    """On an install without any token (revoked ones count), create the owner's admin token and
    return it, once; None otherwise. Concurrent first starts make one token."""
    await conn.execute(q("lock_first_token"))
    if (await conn.execute(q("any_token"))).scalar_one():
        return None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    params = {"owner": OWNER, "token_hash": hash_token(token), "token_prefix": token[:10]}
    await conn.execute(q("insert_admin_token"), params)
    return token


async def list_all(conn: AsyncConnection) -> list[Row]:
    return list((await conn.execute(q("list_tokens"))).mappings().all())


async def revoke(conn: AsyncConnection, key: str) -> list[Row]:
    return list((await conn.execute(q("revoke_token"), {"key": key})).mappings().all())
