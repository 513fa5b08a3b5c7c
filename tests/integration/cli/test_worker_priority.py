"""`pagemill worker` runs its pool at a lower CPU priority (worker.nice), so that on a host it shares with
the API, requests are answered before pages are read: real processes, their niceness read from /proc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.services import descendant_pids, embedded_env, pagemill_worker

pytestmark = pytest.mark.integration


def niceness(pid: int) -> int:
    """A process's nice value (field 19 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


@pytest.mark.parametrize(("setting", "expected"), [(None, 10), ("0", 0)])
def test_the_worker_and_its_pool_run_at_the_configured_niceness(
    tmp_path: Path, setting: str | None, expected: int
) -> None:
    env = embedded_env(tmp_path / "data")
    if setting is not None:
        env["PAGEMILL_WORKER__NICE"] = setting
    with pagemill_worker(env, concurrency=2) as worker:
        pool = descendant_pids(worker.popen.pid)
        assert len(pool) >= 2, "the prefork pool's processes"
        # Never below the niceness this test runs at: a process cannot raise its own priority.
        assert {niceness(pid) for pid in [worker.popen.pid, *pool]} == {max(expected, os.nice(0))}
