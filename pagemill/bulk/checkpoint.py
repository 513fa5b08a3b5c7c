"""The checkpoint of a backfill: one JSON line per submission and per job outcome, appended and synced as
they happen, so a run that was stopped (Ctrl-C, a crash, a kill) resumes without sending a document twice
and without missing one.

A line: ``{"source": "s3://b/k" or a path, "key": "<path under the source>", "size": 123,
"version": "<mtime ns or ETag>", "job_id": "...", "state": "submitted" | "refused" | a final job state,
"code": "..." | null, "at": "<UTC ISO time>"}``.
The last line of a source wins. A document counts as sent when its last line has a job id for its current
size and version: a document changed since (another size, mtime or ETag) is sent again. A line cut short
by a crash is ignored, and the submission it would have recorded is replayed by the server from its
``Idempotency-Key`` (see :func:`idempotency_key`), never made twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from pagemill.bulk.sources import SourceObject
from pagemill.jobs.options import JobOptions


@dataclass(frozen=True, slots=True)
class CheckpointEntry:
    """A checkpoint line."""

    source: str
    key: str
    size: int
    version: str
    job_id: str | None
    state: str
    code: str | None = None
    at: str = ""

    def is_for(self, obj: SourceObject) -> bool:
        """True when this line is about ``obj`` as it is now (same size and version)."""
        return self.source == obj.location and self.size == obj.size and self.version == obj.version


class Checkpoint:
    """A backfill's checkpoint file, read when opened and appended to from any thread."""

    def __init__(self, path: Path | None, *, write: bool = True) -> None:
        self.path = path
        self.entries: dict[str, CheckpointEntry] = {}
        self.damaged_lines = 0
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if path is None:
            return
        if path.exists():
            self._load(path)
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
            if self._ends_mid_line(path):
                self._file.write("\n")  # the next line must not be glued to one a crash cut short

    @staticmethod
    def _ends_mid_line(path: Path) -> bool:
        with path.open("rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def sent(self, obj: SourceObject) -> CheckpointEntry | None:
        """The line saying ``obj``, as it is now, was made a job; None when it still has to be sent."""
        entry = self.entries.get(obj.location)
        return entry if entry is not None and entry.job_id is not None and entry.is_for(obj) else None

    def open_jobs(self) -> list[CheckpointEntry]:
        """Lines of jobs not known to have ended (to wait for)."""
        return [
            entry
            for entry in self.entries.values()
            if entry.job_id is not None and entry.state == "submitted"
        ]

    def record(
        self, obj: SourceObject | CheckpointEntry, *, job_id: str | None, state: str, code: str | None = None
    ) -> CheckpointEntry:
        """Append a line about ``obj`` (a source object, or the line of its submission) and sync it to disk
        before returning: once this returns, a crash cannot lose it."""
        source = obj.source if isinstance(obj, CheckpointEntry) else obj.location
        entry = CheckpointEntry(
            source,
            obj.key,
            obj.size,
            obj.version,
            job_id,
            state,
            code,
            datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with self._lock:
            self.entries[source] = entry
            if self._file is not None:
                self._file.write(json.dumps(asdict(entry)) + "\n")
                self._file.flush()
                os.fsync(self._file.fileno())
        return entry

    def _load(self, path: Path) -> None:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    entry = CheckpointEntry(**json.loads(line))
                except (ValueError, TypeError):
                    self.damaged_lines += 1  # the line a crash cut short (or a hand edit)
                    continue
                self.entries[entry.source] = entry


def idempotency_key(obj: SourceObject, options: JobOptions) -> str:
    """The ``Idempotency-Key`` of submitting ``obj`` as it is now with ``options``: the same on every run,
    so a submission the checkpoint missed (a crash between the server's answer and the line) is replayed by
    the server, not made again; another version of the document, or other options, get another key."""
    identity = json.dumps(
        [obj.location, obj.size, obj.version, options.model_dump(mode="json")], separators=(",", ":")
    )
    return "backfill-" + hashlib.sha256(identity.encode()).hexdigest()
