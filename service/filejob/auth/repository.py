"""Every query against `api_keys`. Callers own the transaction (see `Database.read/write`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.auth.model import ApiKey


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def by_digest(self, token_sha256: str) -> ApiKey | None:
        """The live (not revoked) key whose token hashes to `token_sha256`."""
        return await self.session.scalar(
            select(ApiKey).where(ApiKey.token_sha256 == token_sha256, ApiKey.revoked_at.is_(None))
        )

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def all(self) -> Sequence[ApiKey]:
        return (await self.session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()

    async def revoke(self, key_id: str, when: datetime) -> bool:
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=when)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]
