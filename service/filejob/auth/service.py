"""API key use cases: create, list, revoke (the `filejob keys` commands) and authenticate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from filejob.auth.model import ApiKey
from filejob.auth.principal import Principal
from filejob.auth.repository import ApiKeyRepository
from filejob.auth.tokens import (
    display_prefix,
    new_key_id,
    new_token,
    new_webhook_secret,
    token_digest,
)
from filejob.db.engine import Database
from filejob.db.orm import utcnow


@dataclass(frozen=True)
class KeyDefaults:
    """Server-wide limits for keys created without their own (Settings)."""

    max_active_jobs: int | None
    max_storage_bytes: int | None
    rate_limit: int | None


class KeyService:
    def __init__(self, db: Database, defaults: KeyDefaults) -> None:
        self.db = db
        self.defaults = defaults

    async def create(
        self,
        name: str,
        *,
        max_active_jobs: int | None = None,
        max_storage_bytes: int | None = None,
        rate_limit: int | None = None,
    ) -> tuple[ApiKey, str]:
        """The new key and its token; the token is not stored and cannot be shown again."""
        token = new_token()
        key = ApiKey(
            id=new_key_id(),
            name=name,
            token_sha256=token_digest(token),
            token_prefix=display_prefix(token),
            webhook_secret=new_webhook_secret(),
            max_active_jobs=max_active_jobs,
            max_storage_bytes=max_storage_bytes,
            rate_limit=rate_limit,
            created_at=utcnow(),
        )
        async with self.db.write() as session:
            await ApiKeyRepository(session).add(key)
        return key, token

    async def list(self) -> Sequence[ApiKey]:
        async with self.db.read() as session:
            return await ApiKeyRepository(session).all()

    async def revoke(self, key_id: str) -> bool:
        async with self.db.write() as session:
            return await ApiKeyRepository(session).revoke(key_id, utcnow())

    async def authenticate(self, token: str) -> Principal | None:
        """The caller a bearer token stands for, or None if it is unknown or revoked."""
        async with self.db.read() as session:
            key = await ApiKeyRepository(session).by_digest(token_digest(token))
        return None if key is None else self.principal_of(key)

    def principal_of(self, key: ApiKey) -> Principal:
        return Principal(
            owner_id=key.id,
            name=key.name,
            max_active_jobs=_first(key.max_active_jobs, self.defaults.max_active_jobs),
            max_storage_bytes=_first(key.max_storage_bytes, self.defaults.max_storage_bytes),
            rate_limit=_first(key.rate_limit, self.defaults.rate_limit),
            webhook_secret=key.webhook_secret,
        )


def _first(own: int | None, default: int | None) -> int | None:
    """A key's own limit, else the server default; 0 in either place means unlimited."""
    value = own if own is not None else default
    return value or None
