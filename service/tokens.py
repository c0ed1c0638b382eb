"""API tokens: created by `tapeline token create NAME`, stored as SHA-256 hashes only."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from service.database import Row
from service.queries import q

TOKEN_PREFIX = "tl_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an owner name, or the admin (who sees everyone's runs)."""

    owner: str
    is_admin: bool = False

    @property
    def scope(self) -> str | None:
        """The owner filter for queries: None lets the admin see every owner's rows."""
        return None if self.is_admin else self.owner


ADMIN = Principal(owner="admin", is_admin=True)

RESERVED_OWNERS = frozenset({"admin", "administrator", "root", "system", "tapeline", "anonymous"})
"""Owner names no token may act as: `admin` is the admin's own namespace, the rest look like it."""


def is_reserved_owner(owner: str) -> bool:
    return owner.strip().casefold() in RESERVED_OWNERS


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_admin_token(presented: str, admin_token: str | None) -> bool:
    return bool(admin_token) and hmac.compare_digest(presented.encode(), str(admin_token).encode())


async def create(conn: AsyncConnection, owner: str) -> tuple[str, Row]:
    """A new token for `owner`; the plain token is returned once and never stored."""
    if is_reserved_owner(owner):
        raise ValueError(f"{owner!r} is a reserved owner name; choose another.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    params = {"owner": owner, "token_hash": hash_token(token), "token_prefix": token[:10]}
    row = (await conn.execute(q("insert_token"), params)).mappings().one()
    return token, row


async def find_owner(conn: AsyncConnection, token: str) -> str | None:
    row = (await conn.execute(q("find_token"), {"token_hash": hash_token(token)})).first()
    return str(row.owner) if row else None


async def list_all(conn: AsyncConnection) -> list[Row]:
    return list((await conn.execute(q("list_tokens"))).mappings().all())


async def revoke(conn: AsyncConnection, key: str) -> list[Row]:
    return list((await conn.execute(q("revoke_token"), {"key": key})).mappings().all())
