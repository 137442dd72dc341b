"""Resumable uploads (tus 1.0.0 at `/v1/uploads`, served by `api/tus/`): an upload's row and
bytes, written a request at a time by whichever server takes the request, each acknowledged
offset durable; the finished upload becomes a job in the transaction that completes it.

model.py (the `resumable_uploads` table), repository.py (all SQL on it), files.py (the bytes:
one file per upload, next to the blobs it will become), receive.py (one request's body into the
file, hashed on the way), digests.py (checksums and the running sha256), service.py (the use
cases), errors.py (what a client can be told). No web framework here: the tus headers are the
router's business.
"""
