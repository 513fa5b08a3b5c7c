"""`pagemill worker` runs its pool at a lower CPU priority (worker.nice), so that on a host it shares with
the API, requests are answered before pages are read: real processes, their niceness read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import services
from tests.support.services import REPO_ROOT, descendant_pids, embedded_env, pagemill_worker

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def product_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers here run with the product's defaults, not the suite's worker.nice 0 (tests/conftest.py)."""
    monkeypatch.setattr(services, "CHILD_ENV_DEFAULTS", {})


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


AUTOGROUP = Path("/proc/self/autogroup")
needs_autogroup = pytest.mark.skipif(
    not AUTOGROUP.exists(), reason="this kernel has no autogroups (niceness then counts across sessions)"
)


def autogroup_nice(pid: int | str) -> int:
    """The nice value of a process's autogroup ("/autogroup-85 nice 0")."""
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


@needs_autogroup
def test_a_worker_leading_its_session_lowers_its_autogroup_too(tmp_path: Path) -> None:
    # pagemill_worker starts it in a session of its own, as `pagemill up` does: with autogroups, the
    # scheduler shares the CPU between sessions first, and the process's own niceness counts only inside.
    with pagemill_worker(embedded_env(tmp_path / "data"), concurrency=1) as worker:
        assert os.getsid(worker.popen.pid) == worker.popen.pid
        assert autogroup_nice(worker.popen.pid) == 10
        assert Path(f"/proc/{worker.popen.pid}/autogroup").read_text() != AUTOGROUP.read_text()


@needs_autogroup
def test_a_process_sharing_its_session_leaves_the_autogroup_alone() -> None:
    # Lowering the autogroup of a worker started from a shell would lower the shell and all it runs.
    before = AUTOGROUP.read_text()
    subprocess.run(
        [sys.executable, "-c", "from pagemill.cli.serve import lower_cpu_priority; lower_cpu_priority(7)"],
        check=True,
        cwd=REPO_ROOT,
    )
    assert AUTOGROUP.read_text() == before
