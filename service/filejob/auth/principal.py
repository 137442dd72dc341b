"""Who is calling: the owner their jobs are filed under, and the limits that apply to them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An authenticated API key, or the anonymous caller of a server running with auth off.
    A limit of None means unlimited."""

    owner_id: str | None  # the key's id; None for the anonymous caller
    name: str
    max_active_jobs: int | None = None
    max_storage_bytes: int | None = None
    rate_limit: int | None = None  # requests per minute
    webhook_secret: str | None = None  # signs this caller's webhook deliveries

    @property
    def is_anonymous(self) -> bool:
        return self.owner_id is None
