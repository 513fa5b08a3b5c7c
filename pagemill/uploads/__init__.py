"""Resumable uploads (tus 1.0) that become jobs when their last byte arrives.

api/routes/uploads.py   the tus endpoints (headers in, headers out; the body streamed)
service.py              create, HEAD, terminate, and make the job (at the last byte, or by upload_id)
patch.py                one PATCH: lock, write, keep or discard, record the offset
schemas.py              what the service answers (an upload's state, a PATCH's outcome), the size cap
repository.py           all SQL: fenced updates of the upload row (its lock, offset and parts)
storage.py              the upload store interface and the local-folder backend (append to a file)
s3_multipart.py         the S3 backend: one multipart upload per upload, streamed or gathered parts
metadata.py             Upload-Metadata and the job options it carries
sweeper.py              expired and deleted uploads: storage cleaned, multipart uploads aborted
"""
