"""Who is calling: the bearer key (or the anonymous caller when auth is off), rate-limited.

`caller()` is the one place a /v1 request is authenticated. The upload route calls it before
reading the body; every other route gets it through `CallerDep`. The result is cached on the
request, so a request is authenticated (and counted against its rate limit) once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from filejob.auth.principal import Principal
from filejob.auth.ratelimit import RateLimiter
from filejob.auth.service import KeyService
from filejob.errors import InvalidApiKey, RateLimited, Unauthorized

ANONYMOUS = Principal(owner_id=None, name="anonymous")

# Only documents the scheme in OpenAPI (the "Authorize" button of /docs); `Authenticator` reads
# the header itself, so that the upload route can authenticate before the body is parsed.
bearer_scheme = HTTPBearer(
    auto_error=False, description="An API key from `filejob keys create` (FILEJOB_AUTH=required)."
)
DOCUMENTED = [Depends(bearer_scheme)]
MAX_TOKEN_LENGTH = 256


class Authenticator:
    def __init__(
        self,
        keys: KeyService,
        limiter: RateLimiter,
        *,
        required: bool,
        anonymous: Principal = ANONYMOUS,
    ) -> None:
        self.keys = keys
        self.limiter = limiter
        self.required = required
        self.anonymous = anonymous

    async def authenticate(self, authorization: str | None) -> Principal:
        """A presented key is always checked (a wrong key is an error even with auth off, so a
        client learns of it); no key is the anonymous caller when auth is off."""
        if authorization is None:
            if self.required:
                raise Unauthorized("Send an API key: `Authorization: Bearer <key>`.")
            return self.anonymous
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise InvalidApiKey("The Authorization header must be `Bearer <key>`.")
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidApiKey("The API key is not valid.")
        caller = await self.keys.authenticate(token)
        if caller is None:
            raise InvalidApiKey("The API key is not valid.")
        return caller

    async def count_request(self, caller: Principal) -> None:
        """Count one request against the caller's rate limit."""
        if caller.owner_id is None or not caller.rate_limit:
            return
        wait = await self.limiter.hit(caller.owner_id, caller.rate_limit)
        if wait is not None:
            raise RateLimited(
                f"More than {caller.rate_limit} requests in a minute; slow down.",
                headers={"Retry-After": str(int(wait))},
                limit_per_minute=caller.rate_limit,
            )


async def caller_of(
    auth: Authenticator, state: dict[str, Any], authorization: str | None
) -> Principal:
    """The request's caller, authenticated and counted once per request: the result is kept
    in the request's `state` (ASGI scope["state"], which `request.state` also reads)."""
    cached: Principal | None = state.get("caller")
    if cached is not None:
        return cached
    caller = await auth.authenticate(authorization)
    await auth.count_request(caller)
    state["caller"] = caller
    return caller


async def get_caller(request: Request) -> Principal:
    return await caller_of(
        request.app.state.services.auth,
        request.scope.setdefault("state", {}),
        request.headers.get("authorization"),
    )


CallerDep = Annotated[Principal, Depends(get_caller)]
