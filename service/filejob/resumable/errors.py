"""What a resumable upload's client can be told, as domain errors (rendered as problem+json by
api/problems.py like every `FilejobError`). The statuses are the ones tus 1.0.0 names."""

from __future__ import annotations

from filejob.errors import FilejobError


class UploadNotFound(FilejobError):
    """No such upload, or another key's (which answers exactly the same)."""

    code, status, title = "upload_not_found", 404, "Upload not found"


class UploadExpired(FilejobError):
    code, status, title = "upload_expired", 410, "Upload expired"


class OffsetMismatch(FilejobError):
    """Upload-Offset is not the upload's offset: HEAD tells the right one."""

    code, status, title = "upload_offset_mismatch", 409, "Upload-Offset mismatch"


class UploadLocked(FilejobError):
    """Another request is writing this upload (or deleting it) right now."""

    code, status, title = "upload_locked", 423, "Upload locked by another request"


class UploadInterrupted(FilejobError):
    """This request waited for its bytes when a newer one for the same upload came: the newer
    one goes on (the client had given up on this one)."""

    code, status, title = "upload_interrupted", 400, "Upload interrupted by a newer request"


class ChecksumMismatch(FilejobError):
    code, status, title = "checksum_mismatch", 460, "Checksum mismatch"


class UnsupportedChecksum(FilejobError):
    code, status, title = "unsupported_checksum", 400, "Unsupported checksum algorithm"


class InvalidUploadLength(FilejobError):
    code, status, title = "invalid_upload_length", 400, "Invalid Upload-Length"


class UploadLengthExceeded(FilejobError):
    """More bytes than Upload-Length leaves room for."""

    code, status, title = "upload_length_exceeded", 413, "Bytes beyond Upload-Length"


class UploadIsFinal(FilejobError):
    """A final upload (concatenation) is made whole of its parts: it takes no bytes."""

    code, status, title = "upload_is_final", 403, "A final upload takes no bytes"


class InvalidConcat(FilejobError):
    code, status, title = "invalid_concat", 400, "Invalid Upload-Concat"


class PartialNotFinished(FilejobError):
    code, status, title = "partial_upload_not_finished", 400, "A partial upload is not finished"
