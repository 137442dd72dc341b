"""Resumable uploads (tus 1.0.0 at `/v1/uploads`, served by `api/tus/`): an upload's row and
bytes, written a request at a time by whichever server takes the request, each acknowledged
offset durable; the finished upload becomes a job in the transaction that completes it.

model.py (the `resumable_uploads` table), repository.py (all SQL on it), store.py (where the
bytes live, chosen once for the storage: files.py, a local file per upload; multipart.py with
part_sink.py and concat_parts.py, an S3 multipart upload per upload), receive.py (one request's
body into the store, hashed on the way), digests.py (checksums and the running sha256),
service.py (the use cases), errors.py (what a client can be told). No web framework here: the
tus headers are the router's business.
"""
