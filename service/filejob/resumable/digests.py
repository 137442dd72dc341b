"""Digests of an upload's bytes: a request's `Upload-Checksum` (tus' checksum extension), and
the whole input's sha256 kept running from one request to the next.

hashlib's state cannot be stored, so the running sha256 lives in this process's memory: the
common case (the next request comes to the same server, as each client's requests do unless a
balancer spreads them) hashes every byte once, as it arrives. A request that comes to another
server, or after a restart, finds no state here; the upload is then hashed from its file once,
when its last byte lands (measured on the CI machine: sha256 at ~580 MB/s, so a 1 GiB upload
costs its final request ~2 s of one core, in a worker thread).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from filejob.resumable.errors import ChecksumMismatch, UnsupportedChecksum

if TYPE_CHECKING:
    from hashlib import _Hash

# What `Upload-Checksum` may name (Tus-Checksum-Algorithm), strongest first.
CHECKSUM_ALGORITHMS = ("sha256", "sha512", "sha1", "md5")


@dataclass(frozen=True)
class Checksum:
    """A request's `Upload-Checksum`: the algorithm and the digest its body must have."""

    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, header: str) -> Checksum:
        algorithm, _, encoded = header.strip().partition(" ")
        algorithm = algorithm.lower()
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise UnsupportedChecksum(
                f"Upload-Checksum names {algorithm or 'no algorithm'!r}; this server takes "
                f"{', '.join(CHECKSUM_ALGORITHMS)}.",
                accepted=list(CHECKSUM_ALGORITHMS),
            )
        try:
            digest = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise UnsupportedChecksum("Upload-Checksum's digest is not base64.") from None
        if len(digest) != hashlib.new(algorithm).digest_size:
            raise UnsupportedChecksum(f"Upload-Checksum's digest is not a {algorithm} digest.")
        return cls(algorithm, digest)

    def start(self) -> _Hash:
        return hashlib.new(self.algorithm)

    def verify(self, running: _Hash) -> None:
        if running.digest() != self.digest:
            raise ChecksumMismatch(
                f"The body's {self.algorithm} is not the one Upload-Checksum gives; nothing of "
                "this request was kept.",
            )


class RunningHashes:
    """The sha256 of each upload's first `offset` bytes, for the uploads this process wrote
    last (at most `capacity`; the oldest is forgotten first)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._hashes: OrderedDict[str, tuple[int, _Hash]] = OrderedDict()

    def resume(self, upload_id: str, offset: int) -> _Hash | None:
        """A copy of the sha256 of the upload's first `offset` bytes, if this process has it
        (a new one at offset 0); None if not (the file is hashed at the end instead)."""
        if offset == 0:
            return hashlib.sha256()
        known = self._hashes.get(upload_id)
        if known is None or known[0] != offset:
            return None
        return known[1].copy()

    def keep(self, upload_id: str, offset: int, sha256: _Hash) -> None:
        self._hashes[upload_id] = (offset, sha256)
        self._hashes.move_to_end(upload_id)
        while len(self._hashes) > self._capacity:
            self._hashes.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
