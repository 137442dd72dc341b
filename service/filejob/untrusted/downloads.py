"""Downloading from a URL a client gave: every hop judged, every connection pinned.

`GuardedDownloads.open(url)` follows at most `max_redirects` redirects. Every URL on the way
(the first, and each `Location`) is judged by the operator's `UrlRules` (http or https, no
credentials, the allow and deny patterns, only public addresses unless private ones are
allowed), its host resolved and every address vetted, and the connection made to the vetted
address itself (`Destination.pinned`): neither a redirect nor a DNS answer that changes can
lead the server anywhere it would have refused to go. No proxy from the environment is used,
and no connection serves two requests (`pinned_client`).

The body is read as it arrives on the wire, never decoded: an answer with a `Content-Encoding`
other than `identity` is refused (`source_encoding_unsupported`), as a few KiB of gzip or zstd
could otherwise inflate to gigabytes in one chunk, before any limit could count it.

Whatever fails is a `DownloadFailed` with a stable code and whether another try may succeed
(`transient`: the network, a timeout, an overloaded origin), never an httpx exception.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import anyio
import httpx

from filejob.untrusted.boundary import parse_count
from filejob.untrusted.connections import pinned_client
from filejob.untrusted.destinations import (
    Destination,
    DestinationForbidden,
    DestinationInvalid,
    Unresolvable,
    parse_destination,
    resolve_public,
)
from filejob.untrusted.disposition import disposition_filename

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Answers that say "not now" rather than "never" (every 5xx says so too).
TRANSIENT_STATUSES = frozenset({408, 425, 429})

# The codes of `DownloadFailed`.
INVALID = "invalid_source_url"
REFUSED = "source_url_refused"
UNREACHABLE = "source_unreachable"
TIMED_OUT = "source_timeout"
HTTP_ERROR = "source_http_error"
ENCODING_UNSUPPORTED = "source_encoding_unsupported"
TOO_MANY_REDIRECTS = "too_many_redirects"


class DownloadFailed(Exception):
    """A download that did not happen: `code` (above), a message fit for the client, and
    whether it is worth another try."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class UrlRules:
    """Which URLs may be fetched: those `parse_destination` takes (with `allow_private`),
    that match none of `deny` and, when `allow` has any pattern, one of those. A pattern
    matches the whole URL as it is requested (`Destination.normalised`: host, port and path
    normalised, the query as sent), as `re.fullmatch` does."""

    allow: tuple[re.Pattern[str], ...] = ()
    deny: tuple[re.Pattern[str], ...] = ()
    allow_private: bool = False

    @classmethod
    def of(cls, allow: Iterable[str], deny: Iterable[str], *, allow_private: bool) -> UrlRules:
        return cls(tuple(map(re.compile, allow)), tuple(map(re.compile, deny)), allow_private)

    def judge(self, raw: str, *, name: str = "source_url") -> Destination:
        """The destination `raw` names, if it may be fetched; else `DestinationInvalid` (its
        form) or `DestinationForbidden`. The addresses are vetted later, when resolved."""
        target = parse_destination(raw, allow_private=self.allow_private, name=name)
        url = target.normalised
        if any(pattern.fullmatch(url) for pattern in self.deny):
            raise DestinationForbidden(f"{name} is denied by this server's rules.")
        if self.allow and not any(pattern.fullmatch(url) for pattern in self.allow):
            raise DestinationForbidden(f"{name} is not among the URLs this server allows.")
        return target


@dataclass
class Download:
    """An origin's 2xx answer, its body not read yet: `url` is where it came from, after
    the redirects."""

    url: str
    response: httpx.Response

    @property
    def length(self) -> int | None:
        """The body's announced length (the file's: a coded body is refused)."""
        return parse_count(self.response.headers.get("content-length", "").strip())

    @property
    def content_type(self) -> str | None:
        """The announced type (a hint for sniffing), without its parameters."""
        media = self.response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return media or None

    @property
    def filename(self) -> str | None:
        """The origin's name for the file: its `Content-Disposition`'s, else the URL's last
        path segment (untrusted: sanitised by whoever shows it)."""
        named = disposition_filename(self.response.headers.get("content-disposition"))
        return named or name_in_url(self.url)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, as it arrives: each chunk no larger than what one read of the
        connection gave (the transfer coding undone, no content coding)."""
        with _network_errors(self.url):
            async for chunk in self.response.aiter_raw():
                yield chunk


def name_in_url(url: str) -> str | None:
    """The file name a URL suggests: its path's last segment, unescaped (untrusted:
    sanitised by whoever shows it); None if the path ends with `/`."""
    segment = urlsplit(url).path.rsplit("/", 1)[-1]
    return unquote(segment, errors="replace") or None


class GuardedDownloads:
    """GETs of untrusted URLs (see the module doc); `timeout` bounds connecting and each
    wait for bytes. Close it when done."""

    def __init__(
        self,
        rules: UrlRules,
        *,
        timeout: float,
        max_redirects: int = MAX_REDIRECTS,
        user_agent: str = "filejob-imports/1",
    ) -> None:
        self.rules = rules
        self.max_redirects = max_redirects
        # Redirects are not followed by the client: each hop is judged here first.
        self._client = pinned_client(
            timeout=timeout, headers={"User-Agent": user_agent, "Accept-Encoding": "identity"}
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    @contextlib.asynccontextmanager
    async def open(self, url: str) -> AsyncIterator[Download]:
        """The download of `url`, once an answer that is no redirect has arrived; raises
        `DownloadFailed` (a refused hop, too many redirects, an answer other than 2xx, the
        network)."""
        final_url, response = await self._follow(url)
        try:
            yield Download(final_url, response)
        finally:
            with anyio.CancelScope(shield=True):  # a cancelled fetch still closes its connection
                await response.aclose()

    async def _follow(self, url: str) -> tuple[str, httpx.Response]:
        for hop in range(self.max_redirects + 1):
            response = await self._get(url, "source_url" if hop == 0 else f"The redirect to {url}")
            if response.status_code not in REDIRECTS:
                if not response.is_success:
                    await response.aclose()
                    status = response.status_code
                    transient = status >= 500 or status in TRANSIENT_STATUSES
                    message = f"{url} answered {status} {response.reason_phrase}.".strip()
                    raise DownloadFailed(HTTP_ERROR, message, transient=transient)
                await _refuse_coded(url, response)
                return url, response
            location = response.headers.get("location")
            await response.aclose()
            if not location:
                message = f"{url} answered {response.status_code} without a Location."
                raise DownloadFailed(HTTP_ERROR, message)
            url = urljoin(url, location.strip())
        raise DownloadFailed(
            TOO_MANY_REDIRECTS, f"source_url redirected more than {self.max_redirects} times."
        )

    async def _get(self, url: str, name: str) -> httpx.Response:
        """One hop: judged, resolved, vetted, and sent to the vetted address."""
        try:
            target = self.rules.judge(url, name=name)
            address = await resolve_public(target, allow_private=self.rules.allow_private)
        except DestinationInvalid as exc:
            raise DownloadFailed(INVALID, str(exc)) from exc
        except Unresolvable as exc:  # DNS may answer next time
            raise DownloadFailed(UNREACHABLE, str(exc), transient=True) from exc
        except DestinationForbidden as exc:
            raise DownloadFailed(REFUSED, str(exc)) from exc
        pinned, host, extensions = target.pinned(address)
        request = self._client.build_request("GET", pinned, headers=host, extensions=extensions)
        with _network_errors(url):
            return await self._client.send(request, stream=True)


async def _refuse_coded(url: str, response: httpx.Response) -> None:
    """Refuse (and close) an answer whose body has a content coding: it was asked for
    `identity`, and the file is what the origin stores, not what it would inflate to."""
    codings = [
        coding.strip().lower()
        for coding in response.headers.get_list("content-encoding", split_commas=True)
    ]
    coded = [coding for coding in codings if coding and coding != "identity"]
    if coded:
        await response.aclose()
        message = (
            f"{url} sent its body with Content-Encoding {', '.join(coded)}; only an uncoded "
            "body (identity) is taken."
        )
        raise DownloadFailed(ENCODING_UNSUPPORTED, message)


@contextlib.contextmanager
def _network_errors(url: str) -> Iterator[None]:
    """httpx's errors as `DownloadFailed`, naming `url` (never the pinned address's URL)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise DownloadFailed(TIMED_OUT, f"{url} timed out ({_kind(exc)}).", transient=True) from exc
    except httpx.TransportError as exc:  # refused, reset, cut short, TLS
        message = f"{url} could not be fetched ({_kind(exc)})."
        raise DownloadFailed(UNREACHABLE, message, transient=True) from exc


def _kind(exc: Exception) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
