"""The local upload writer: appends at the stored offset, cuts back bytes never kept, discards on demand."""

from __future__ import annotations

from pathlib import Path

from pagemill.jobs.service import source_key
from pagemill.storage.local import LocalBlobStore
from pagemill.uploads.storage import LocalUploadStore, StoredUpload


def test_writes_append_and_unkept_bytes_are_cut_back(tmp_path: Path) -> None:
    uploads = LocalUploadStore(LocalBlobStore(tmp_path))
    assert uploads.start("u1", "j1", 10) is None
    path = tmp_path / source_key("j1")
    writer = uploads.writer(StoredUpload(id="u1", job_id="j1", offset=0))
    writer.write(b"hello ")
    writer.keep(new_offset=6, final=False)
    writer.close()
    # A PATCH whose replica died before recording its bytes: they are on disk, but not in the upload.
    dead = uploads.writer(StoredUpload(id="u1", job_id="j1", offset=6))
    dead.write(b"LOST")
    dead.close()
    writer = uploads.writer(StoredUpload(id="u1", job_id="j1", offset=6))
    writer.write(b"world")
    writer.keep(new_offset=11, final=True)
    writer.close()
    assert path.read_bytes() == b"hello world"
    assert uploads.read_head("j1", 5) == b"hello"


def test_discard_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    uploads = LocalUploadStore(LocalBlobStore(tmp_path))
    uploads.start("u2", "j2", None)
    writer = uploads.writer(StoredUpload(id="u2", job_id="j2", offset=0))
    writer.write(b"abc")
    writer.keep(new_offset=3, final=False)
    writer.close()
    writer = uploads.writer(StoredUpload(id="u2", job_id="j2", offset=3))
    writer.write(b"bad checksum")
    writer.discard()
    writer.close()
    assert (tmp_path / source_key("j2")).read_bytes() == b"abc"
    uploads.remove("u2", "j2", None, keep_source=False)
    assert not (tmp_path / "jobs" / "j2").exists()
