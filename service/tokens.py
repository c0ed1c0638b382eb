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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_admin_token(presented: str, admin_token: str | None) -> bool:
    return bool(admin_token) and hmac.compare_digest(presented.encode(), str(admin_token).encode())


async def create(conn: AsyncConnection, owner: str) -> tuple[str, Row]:
    """A new token for `owner`; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    params = {"owner": owner, "token_hash": hash_token(token), "token_prefix": token[:10]}
    row = (await conn.execute(q("insert_token"), params)).mappings().one()
    return token, row


async def find_owner(conn: AsyncConnection, token: str) -> str | None:
    row = (await conn.execute(q("find_token"), {"token_hash": hash_token(token)})).first()
    return str(row.owner) if row else None


async def find_principal(conn: AsyncConnection, token: str) -> Principal | None:
    """Who a stored token acts as; the owner token of a fresh install is an admin."""
    row = (await conn.execute(q("find_token"), {"token_hash": hash_token(token)})).first()
    return Principal(owner=str(row.owner), is_admin=bool(row.is_admin)) if row else None


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
