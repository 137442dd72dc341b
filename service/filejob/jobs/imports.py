"""Imports: jobs whose input the server fetches from a URL (`source_url`) instead of receiving.

At submit, admission judges the URL (`ImportPolicy.check`: its form, the operator's allow and
deny patterns, an address literal or `localhost` that is plainly not public) and the job is
accepted with no input yet. Its first attempt fetches it (jobs/fetching.py) under the same
rules, every redirect and every resolved address vetted again, then processes it; a retry
after the input was stored does not fetch again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from filejob.config import MiB, Settings
from filejob.errors import FilejobError
from filejob.untrusted.destinations import Destination, DestinationForbidden, DestinationInvalid
from filejob.untrusted.downloads import UrlRules, name_in_url
from filejob.untrusted.filenames import MAX_FILENAME_BYTES, sanitize_filename

if TYPE_CHECKING:  # admission.py imports this module
    from filejob.jobs.admission import ReservedBytes

# An import's input before it is fetched: named after the URL (else this), of no known type.
FALLBACK_NAME = "download"
UNKNOWN_TYPE = "application/octet-stream"


class InvalidSourceUrl(FilejobError):
    code, status, title = "invalid_source_url", 422, "Invalid source URL"


class SourceUrlRefused(FilejobError):
    code, status, title = "source_url_refused", 422, "Source URL not allowed"


class InputSourceConflict(FilejobError):
    """A submit with both a file and a `source_url`, or with neither."""

    code, status, title = "file_or_source_url", 422, "Send a file or a source_url"


@dataclass(frozen=True)
class ImportPolicy:
    """What imports may do: which URLs (`rules`), how many bytes (`max_bytes`, the upload
    limit; the owner's quota bounds them too), how long a connect or a silence may last
    (`timeout`; the whole fetch is part of the attempt's `timeout_seconds`). `reserved`: the
    bytes an owner's uploads in progress reserved, which the fetch's quota counts as stored
    (as `Admission`'s does; None: none are)."""

    rules: UrlRules
    max_bytes: int
    timeout: float = 30.0
    spool_memory_bytes: int = MiB
    max_filename_bytes: int = MAX_FILENAME_BYTES
    reserved: ReservedBytes | None = None

    @classmethod
    def for_settings(
        cls, settings: Settings, *, reserved: ReservedBytes | None = None
    ) -> ImportPolicy:
        return cls(
            UrlRules.of(
                settings.import_allow,
                settings.import_deny,
                allow_private=settings.import_allow_private,
            ),
            max_bytes=settings.max_upload_bytes,
            timeout=settings.import_timeout,
            spool_memory_bytes=settings.spool_memory_bytes,
            max_filename_bytes=settings.max_filename_length,
            reserved=reserved,
        )

    def check(self, url: str) -> Destination:
        """The destination `url` names if it may be fetched: raises `InvalidSourceUrl` or
        `SourceUrlRefused` (a 422 at submit). Its addresses are vetted when it is fetched."""
        try:
            return self.rules.judge(url)
        except DestinationInvalid as exc:
            raise InvalidSourceUrl(str(exc)) from exc
        except DestinationForbidden as exc:
            raise SourceUrlRefused(str(exc)) from exc


def pending_input(source_url: str, sha256: str, max_filename_bytes: int) -> dict[str, Any]:
    """A new import's input columns: none stored yet (`input_key` None), the name the URL's
    path suggests, no type known, size 0, and the sha256 its bytes must have ("" if none)."""
    name = name_in_url(source_url)
    return {
        "source_url": source_url,
        "input_key": None,
        "input_filename": sanitize_filename(name, FALLBACK_NAME, max_bytes=max_filename_bytes),
        "input_content_type": UNKNOWN_TYPE,
        "input_size": 0,
        "input_sha256": sha256,
    }
