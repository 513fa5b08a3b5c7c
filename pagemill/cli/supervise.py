"""Process lifetimes for `pagemill up` and `pagemill worker`: SIGTERM (what Docker, Kubernetes and systemd
send) ends everything warmly, within a bounded time.

``up`` runs the API and the worker as children, each in its own session: a SIGTERM to ``up``'s process
group (a terminal, systemd, ``kill -TERM -PGID``) then reaches only ``up``, which forwards it to each
child's main process. Were the Celery pool processes signalled directly as well, they would die mid-task
and be restarted by a pool that is shutting down, which can hang it. Children get SIGTERM if ``up`` itself
dies (``PR_SET_PDEATHSIG``), so a killed ``up`` leaves no orphan serving or consuming.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import typer

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when this process ends, however it ends (Linux)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the forwarding below still covers SIGTERM and Ctrl-C
        return lambda: None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


def spawn(args: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m pagemill ARGS`` in its own session (so group signals do not reach it directly)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pagemill", *args],
        env=dict(env) if env is not None else None,
        start_new_session=True,
        # preexec_fn is unsafe with threads; `pagemill up` starts none before spawning.
        preexec_fn=_die_with_parent(),
    )


RESTARTS_PER_WINDOW = 5
RESTART_WINDOW_S = 300.0


def supervise(
    children: dict[str, subprocess.Popen[bytes]],
    stop_timeout_s: float,
    restart: Mapping[str, Callable[[], subprocess.Popen[bytes]]] | None = None,
) -> int:
    """Wait until a stop signal arrives or a child exits, then stop every child and return the exit code.

    A child named in ``restart`` that exits on its own is started again (as Docker's restart policy or
    Kubernetes would: a worker that killed itself to get a fresh pool, a process the OOM killer took), up
    to RESTARTS_PER_WINDOW times in RESTART_WINDOW_S; past that everything stops.

    Stopping: SIGTERM to each child's main process (uvicorn and Celery then shut down warmly), up to
    ``stop_timeout_s`` seconds, then SIGKILL to each child's whole process group (its pool included). A
    second stop signal skips the wait. Returns 0 after a requested stop that finished in time, else 1.
    """
    received: list[int] = []
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    restarts: dict[str, list[float]] = {}
    try:
        while True:
            exited = _wait_for_stop(children, stop)
            if not exited or exited not in (restart or {}):
                break
            recent = [t for t in restarts.get(exited, []) if time.monotonic() - t < RESTART_WINDOW_S]
            if len(recent) >= RESTARTS_PER_WINDOW:
                typer.echo(f"pagemill: {exited} keeps exiting; giving up", err=True)
                break
            code = children[exited].returncode
            typer.echo(f"pagemill: {exited} exited with {code}; starting it again", err=True)
            _kill_group(children[exited])
            restarts[exited] = [*recent, time.monotonic()]
            children[exited] = (restart or {})[exited]()
        if exited:
            typer.echo(f"pagemill: {exited} exited with {children[exited].returncode}; stopping", err=True)
        else:
            typer.echo(f"pagemill: {signal.Signals(received[0]).name} received; stopping", err=True)
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        in_time = _wait_all(children, stop_timeout_s, lambda: len(received) > 1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for child in children.values():
            _kill_group(child)
    if not in_time:
        typer.echo(f"pagemill: stopped what was left after {stop_timeout_s:.0f}s with SIGKILL", err=True)
    return 0 if in_time and not exited else 1


def _wait_for_stop(children: Mapping[str, subprocess.Popen[bytes]], stop: threading.Event) -> str | None:
    """Block until ``stop`` is set (None) or a child exits (its name)."""
    while not stop.wait(0.2):
        for name, child in children.items():
            if child.poll() is not None:
                return name
    return None


def _wait_all(
    children: Mapping[str, subprocess.Popen[bytes]], timeout_s: float, hurry: Callable[[], bool]
) -> bool:
    """Wait for every child to exit, up to ``timeout_s`` or until ``hurry()``; True if they all did."""
    deadline = time.monotonic() + timeout_s
    while any(child.poll() is None for child in children.values()):
        if time.monotonic() >= deadline or hurry():
            return False
        time.sleep(0.1)
    return True


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL whatever is left of a child's process group (a pool process outliving its parent)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(5)


def bound_warm_shutdown(timeout_s: float) -> None:
    """Make a Celery worker's warm shutdown (SIGTERM) end within ``timeout_s`` seconds.

    Celery's warm shutdown waits for running tasks however long they take (up to the task time limit).
    After ``timeout_s`` the worker is sent SIGQUIT, Celery's cold shutdown: its tasks are not acked (acks
    late) and go back to the queue, and the sweeper re-enqueues whatever the broker does not redeliver.
    If even that has not ended the process 10 s later, its pool processes are killed and it exits.
    """
    from celery.signals import worker_shutting_down

    def arm(how: str = "", exitcode: int = 0, **_: Any) -> None:
        if how != "Warm":
            return
        timer = threading.Timer(timeout_s, _escalate, kwargs={"exitcode": exitcode})
        timer.daemon = True
        timer.start()

    worker_shutting_down.connect(arm, weak=False)


def _escalate(exitcode: int) -> None:
    log.warning("warm shutdown still waiting for tasks: cold shutdown (their messages are redelivered)")
    os.kill(os.getpid(), signal.SIGQUIT)
    time.sleep(10)
    log.error("cold shutdown did not finish: killing the pool processes")
    for pid in _child_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os._exit(exitcode or 1)


def _child_pids() -> list[int]:
    """This process's children (forked by any of its threads), from /proc."""
    pids: list[int] = []
    for path in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(pid) for pid in path.read_text().split()]
    return pids
