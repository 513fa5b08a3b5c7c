"""Helpers for the tus tests: raw tus requests (a PATCH cut off mid-body), tus-js-client run with node, and
what is left in storage (S3 objects and open multipart uploads, or local files) for an upload."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support.services import REPO_ROOT, S3Server

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"
TUS_JS_DIR = REPO_ROOT / "tests" / "support" / "tus_js"
MIB = 1024 * 1024


def metadata(**pairs: str) -> str:
    """An Upload-Metadata header from plain values."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())


def create(client: httpx.Client, length: int, **meta: str) -> httpx.Response:
    """POST /api/v1/uploads for ``length`` bytes."""
    headers = {**TUS, "Upload-Length": str(length)}
    if meta:
        headers["Upload-Metadata"] = metadata(**meta)
    return client.post("/api/v1/uploads", headers=headers)


def create_ok(client: httpx.Client, length: int, **meta: str) -> str:
    """Create an upload, assert 201, return its path (``/api/v1/uploads/<id>``)."""
    response = create(client, length, **meta)
    assert response.status_code == 201, response.text
    return str(response.headers["location"])


def patch(client: httpx.Client, path: str, offset: int, data: bytes, **headers: str) -> httpx.Response:
    """PATCH ``data`` at ``offset``."""
    sent = {**TUS, "Content-Type": OFFSET_STREAM, "Upload-Offset": str(offset)}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    return client.patch(path, content=data, headers=sent)


def head(client: httpx.Client, path: str) -> httpx.Response:
    """HEAD an upload."""
    return client.head(path, headers=TUS)


def offset_of(client: httpx.Client, path: str) -> int:
    """The upload's offset (HEAD must answer 200)."""
    response = head(client, path)
    assert response.status_code == 200, response.headers
    return int(response.headers["upload-offset"])


@contextlib.contextmanager
def open_patch(
    base_url: str, key: str, path: str, offset: int, declared: int, first: bytes
) -> Iterator[socket.socket]:
    """A PATCH that declares ``declared`` body bytes, sends ``first`` and waits: the upload is locked while
    the context is open. On exit the socket is closed mid-body (a dropped connection)."""
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30)
    try:
        request = (
            f"PATCH {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: {OFFSET_STREAM}\r\nUpload-Offset: {offset}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
        sock.sendall(request + first)
        yield sock
    finally:
        sock.close()


def drop_mid_chunk(base_url: str, key: str, path: str, offset: int, chunk: bytes) -> None:
    """Send the first half of ``chunk`` as a PATCH declaring all of it, then close the connection."""
    with open_patch(base_url, key, path, offset, len(chunk), chunk[: len(chunk) // 2]):
        pass


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns a truthy value; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streaming."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def node_available() -> bool:
    """Whether node and the installed tus-js-client (npm ci in tests/support/tus_js) are here."""
    return shutil.which("node") is not None and (TUS_JS_DIR / "node_modules" / "tus-js-client").is_dir()


def ensure_tus_js() -> None:
    """Install tus-js-client from the lock file if it is not (what `make test` does first). Without node and
    npm the tus-js-client tests fail here, saying what to install: they are part of the suite."""
    if node_available():
        return
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are missing: `make system-deps` installs them (Debian nodejs, npm)")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TUS_JS_DIR, check=True, timeout=300)


def tus_js_upload(
    endpoint: str,
    file: Path,
    *,
    key: str,
    chunk_size: int,
    metadata: dict[str, str],
    upload_url: str | None = None,
    timeout: float = 180,
) -> dict[str, Any]:
    """Upload ``file`` with tus-js-client under node; ``{"url", "jobId"}`` (asserts success)."""
    ensure_tus_js()
    args = {
        "endpoint": endpoint,
        "file": str(file),
        "chunkSize": chunk_size,
        "headers": {"Authorization": f"Bearer {key}"},
        "metadata": metadata,
        "uploadUrl": upload_url,
    }
    done = subprocess.run(
        ["node", str(TUS_JS_DIR / "upload.mjs"), json.dumps(args)],
        cwd=TUS_JS_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"tus-js-client failed: {done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------------------------------
# What storage holds


def s3_keys(s3: S3Server, bucket: str, prefix: str) -> list[str]:
    """Object keys under ``prefix``."""
    response = s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for obj in response.get("Contents", [])]


def s3_open_multipart(s3: S3Server, bucket: str, prefix: str) -> list[str]:
    """Keys of multipart uploads still open under ``prefix``."""
    response = s3.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["Key"] for upload in response.get("Uploads", [])]


def s3_sha256(s3: S3Server, bucket: str, key: str) -> str:
    """SHA-256 of an object, streaming."""
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for chunk in body.iter_chunks(MIB):
        digest.update(chunk)
    return digest.hexdigest()
