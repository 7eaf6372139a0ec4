"""Operators' bearer tokens: roles, generation and hashing. Only the hash is stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from enum import StrEnum

from router.service.records import NewToken, TokenRecord
from router.store import Store

_PREFIX = "sb_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """viewer < operator < admin: a stronger role may do what a weaker one may."""
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class TokenError(ValueError):
    pass


def token_hash(token: str) -> str:
    # Tokens are 256 random bits, so a plain SHA-256 is enough (no brute force to slow down).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return _PREFIX + secrets.token_urlsafe(32)


async def create_token(store: Store, name: str, role: Role, now: datetime) -> str:
    """Store a new token for *name* and return it; it is shown once and never again."""
    if not _NAME.match(name):
        raise TokenError(f"token name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
    existing = {token.name for token in await store.tokens()}
    if name in existing:
        raise TokenError(f"a token named {name!r} exists already (revoke it or pick another name)")
    token = new_token()
    await store.add_token(
        NewToken(name=name, role=role.value, token_hash=token_hash(token), created_at=now)
    )
    return token


async def authenticate(store: Store, token: str) -> TokenRecord | None:
    """The live token record for *token*, or None (unknown or revoked)."""
    if not token.startswith(_PREFIX):
        return None
    record = await store.token_by_hash(token_hash(token))
    if record is None or record.revoked_at is not None:
        return None
    return record
