"""Real services for the test suite: Postgres, Redis, an S3 server and Pagemill processes.

Every helper is a context manager that yields connection information and tears the service down on exit,
also when the test body raises. Processes are started in their own session with a parent-death signal, so
they die with the test run even if pytest itself is killed; an ``atexit`` hook stops anything still
registered as a last resort. Start services from the main thread (see :func:`_pdeathsig_preexec`).
Set ``PAGEMILL_TEST_KEEP_LOGS=1`` to keep process logs after their handles are stopped.

Service selection, cheapest first:

* :func:`postgres_url` uses ``PAGEMILL_TEST_DATABASE_URL`` if set, else a fresh database on a server at
  127.0.0.1:5432, else a throwaway cluster (``initdb`` + ``postgres`` on a free port).
* :func:`redis_server` spawns a throwaway ``redis-server``; without the binary it borrows a random database
  number on 127.0.0.1:6379 and flushes it at the end.
* :func:`s3_server` runs moto's S3-compatible server as a subprocess.
* :func:`nats_server` spawns a throwaway ``nats-server`` (optionally with JetStream), always.
* :func:`pagemill_process` runs ``python -m pagemill ...`` with a log file and a handle to stop or kill it;
  :func:`pagemill_worker` and :func:`pagemill_api` also wait until the worker is ready or the API is live.
* :func:`distributed_env` and :func:`embedded_env` build the ``PAGEMILL_*`` environment for those processes.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import functools
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from tests.support.egress_servers import TestCertificates

REPO_ROOT = Path(__file__).resolve().parents[2]
# The interpreter running the tests is the project's venv interpreter (make test uses it), so children
# inherit exactly the same packages.
PYTHON = sys.executable
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-system-deps.sh"

S3_ACCESS_KEY_ID = "testing"
S3_SECRET_ACCESS_KEY = "testing"
S3_REGION = "us-east-1"

_PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    """A test service could not be started; the message says what is missing and how to get it."""


# --------------------------------------------------------------------------------------------------
# Small utilities


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; raise ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def wait_http_ok(
    url: str,
    timeout: float = 15.0,
    handle: ProcessHandle | None = None,
    context: ssl.SSLContext | None = None,
) -> None:
    """Wait until a GET on ``url`` answers 2xx. With ``handle``, fail at once if that process exits;
    ``context``: the TLS context of an https ``url``."""

    def ok() -> bool:
        if handle is not None and handle.poll() is not None:
            raise ServiceError(
                f"{handle.name} exited with {handle.returncode} before {url} answered:\n{handle.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0, context=context) as response:
                return 200 <= int(response.status) < 300
        except (urllib.error.URLError, OSError):
            # Connection refused, reset or a non-2xx answer: not ready yet.
            return False

    wait_until(ok, timeout, f"HTTP 2xx from {url}", interval=0.1)


def wait_for_log(handle: ProcessHandle, pattern: str, timeout: float = 30.0) -> re.Match[str]:
    """Wait until the handle's log matches the regular expression ``pattern``; return the match.

    Fails early, with the log tail, if the process exits before the pattern shows up.
    """
    regex = re.compile(pattern)
    found: list[re.Match[str]] = []

    def matched() -> bool:
        match = regex.search(handle.log_text())
        if match:
            found.append(match)
            return True
        if handle.poll() is not None:
            raise ServiceError(
                f"{handle.name} exited with {handle.returncode} before logging {pattern!r}:\n"
                f"{handle.log_tail()}"
            )
        return False

    try:
        wait_until(matched, timeout, f"{pattern!r} in the log of {handle.name}", interval=0.1)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n--- log tail ---\n{handle.log_tail()}") from None
    return found[0]


def _find_binary(name: str, extra_globs: Sequence[str] = ()) -> str | None:
    """Locate an executable on PATH or in the extra glob patterns (newest version first)."""
    on_path = shutil.which(name)
    if on_path:
        return on_path
    for pattern in extra_globs:
        # Sort by the numeric version in the path so /usr/lib/postgresql/16 wins over 9.6.
        candidates = sorted(glob.glob(pattern), key=_version_key, reverse=True)
        for candidate in candidates:
            if os.access(candidate, os.X_OK):
                return candidate
    return None


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path))


@functools.cache
def _ensure_system_deps() -> None:
    """As root, run the system dependency script (once per process) so a fresh machine gets its binaries."""
    if os.geteuid() != 0 or not INSTALL_SCRIPT.exists():
        return
    # The script is idempotent and quick when everything is present; it is only reached when a binary is
    # missing, so a normal run never pays for it.
    subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False, stdin=subprocess.DEVNULL, timeout=900)


def _pdeathsig_preexec(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive ``sig`` when the test process dies (Linux only).

    ``start_new_session`` detaches children from the terminal's signals, so without this a killed pytest
    would leave servers and workers running forever. Linux sends the signal when the *thread* that started
    the child ends, so start services from the main thread, never from a short-lived helper thread.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return lambda: None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        # The parent may have died between fork and prctl; then the signal would never come.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


# --------------------------------------------------------------------------------------------------
# Processes


_LIVE: set[ManagedProcess] = set()


class ManagedProcess:
    """A child process in its own process group whose output goes to a log file.

    Use :meth:`stop` for a graceful stop (SIGTERM to the group, SIGKILL after a timeout), :meth:`kill9` to
    simulate a crash, :meth:`log_text` to read what it printed.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        log_path: Path | None = None,
        user: str | None = None,
        death_signal: int = signal.SIGKILL,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.stop_signal = stop_signal
        self._own_dir: Path | None = None
        if log_path is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix=f"pagemill-{_slug(name)}-"))
            log_path = self._own_dir / "output.log"
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # The child keeps its own copy of the descriptor; closing ours right after spawn avoids a
        # ResourceWarning (warnings are errors in this suite).
        with open(log_path, "ab") as log_file:
            self.popen: subprocess.Popen[bytes] = subprocess.Popen(
                self.cmd,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(death_signal),
                user=user,
            )
        self.pid = self.popen.pid
        _LIVE.add(self)

    # Introspection ----------------------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended (negative: killed by that signal)."""
        return self.popen.returncode

    def poll(self) -> int | None:
        """The exit status if the process has ended, else None."""
        return self.popen.poll()

    def is_running(self) -> bool:
        """True while the main process is alive."""
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the main process to exit and return its status."""
        return self.popen.wait(timeout)

    def log_text(self) -> str:
        """Everything the process has written to stdout and stderr so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def child_pids(self, recursive: bool = True) -> list[int]:
        """Pids of the process's children (all descendants unless ``recursive`` is False), from /proc."""
        return descendant_pids(self.pid, recursive=recursive)

    def group_pids(self) -> list[int]:
        """Pids of every live process in this handle's process group (the main process included)."""
        return [pid for pid, _ppid, pgid in _proc_table() if pgid == self.pid]

    # Ending -----------------------------------------------------------------------------------------

    def send_signal(self, sig: int, *, group: bool = True) -> None:
        """Send ``sig`` to the whole process group (default) or only to the main process."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0, *, group: bool = False) -> int:
        """Stop gracefully: the stop signal (SIGTERM) to the main process, SIGKILL after ``timeout`` s.

        Like ``docker stop``, only the main process is signalled by default (a Celery worker then shuts its
        pool down itself); ``group=True`` signals every process of the group. Returns the exit status.
        Idempotent; whatever is left of the process group afterwards is killed.
        """
        if self.popen.poll() is None:
            self.send_signal(self.stop_signal, group=group)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.popen.wait(5)
        # Pool children may outlive a main process that exited on its own; never leave them behind.
        self._kill_group_leftovers()
        self._close()
        return self.popen.returncode

    def kill9(self, pid: int | None = None) -> None:
        """Simulate a crash: SIGKILL to the whole process group, or only to ``pid`` (e.g. a pool child).

        Killing the group waits until the main process is reaped so the caller sees it dead.
        """
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        self.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)

    def discard(self) -> None:
        """End the process group at once (SIGKILL) and release it: for a test's teardown, where how the
        process stops is not what is tested (tests/integration/cli/test_signals.py tests graceful stops)."""
        self.kill9()
        self._kill_group_leftovers()
        self._close()

    def _kill_group_leftovers(self) -> None:
        if self.group_pids():
            self.send_signal(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: not self.group_pids(), 5, f"process group of {self.name} to exit")

    def _close(self) -> None:
        _LIVE.discard(self)
        if self._own_dir is not None and os.environ.get("PAGEMILL_TEST_KEEP_LOGS") != "1":
            # Logs of a failed test were already shown by the assertion helpers; keep them on request.
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} rc={self.popen.returncode}>"


# The handle type the tests talk about; one class serves both generic and Pagemill processes.
ProcessHandle = ManagedProcess


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:40] or "proc"


def _proc_table() -> list[tuple[int, int, int]]:
    """(pid, ppid, pgid) for every process, read from /proc so no psutil is needed."""
    table: list[tuple[int, int, int]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue  # it exited while we were looking
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 3 or fields[0] == "Z":
            continue  # zombies are dead already; only their parent's wait is missing
        table.append((int(entry), int(fields[1]), int(fields[2])))
    return table


def descendant_pids(pid: int, recursive: bool = True) -> list[int]:
    """Live children (or all descendants) of ``pid``, sorted."""
    children: dict[int, list[int]] = {}
    for child, parent, _pgid in _proc_table():
        children.setdefault(parent, []).append(child)
    result: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop()
        result.append(current)
        if recursive:
            todo.extend(children.get(current, []))
    return sorted(result)


def start_process(
    cmd: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    name: str | None = None,
    cwd: Path | str | None = None,
    log_path: Path | None = None,
) -> ManagedProcess:
    """Start any command as a :class:`ManagedProcess` (own process group, output to a log file).

    ``env`` is added to a copy of the current environment.
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    return ManagedProcess(cmd, name=name or Path(cmd[0]).name, env=full_env, cwd=cwd, log_path=log_path)


CHILD_ENV_DEFAULTS: dict[str, str] = {}
"""Settings every :func:`pagemill_process` child gets unless its ``env`` says otherwise (the test suite's
conftest fills it in; benchmarks leave it empty and run the product's defaults)."""


def pagemill_process(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    name: str | None = None,
    log_path: Path | None = None,
    inherit_pagemill_env: bool = False,
    module: str = "pagemill",
) -> ManagedProcess:
    """Start ``<python> -m pagemill <args>`` (or ``-m <module>``) with ``env`` and return its handle.

    The child gets the current environment minus every ``PAGEMILL_*`` variable (so a developer's shell
    configuration cannot leak into a test), then :data:`CHILD_ENV_DEFAULTS`, then ``env``. Call ``.stop()``
    or use it as a context manager.
    """
    full_env = {
        key: value
        for key, value in os.environ.items()
        if inherit_pagemill_env or not key.startswith("PAGEMILL_")
    }
    # The package is used from the checkout, installed or not; unbuffered so logs show up immediately.
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    full_env["PYTHONUNBUFFERED"] = "1"
    # Plain tracebacks and no colour codes: logs are read by regexes and pasted into failure messages.
    full_env["_TYPER_STANDARD_TRACEBACK"] = "1"
    full_env["NO_COLOR"] = "1"
    full_env.update(CHILD_ENV_DEFAULTS)
    full_env.update(env)
    label = name or f"pagemill {' '.join(args[:1])}".strip()
    return ManagedProcess(
        [PYTHON, "-m", module, *args], name=label, env=full_env, cwd=REPO_ROOT, log_path=log_path
    )


@contextlib.contextmanager
def pagemill_worker(
    env: Mapping[str, str],
    *,
    queues: str = "ingest,cpu",
    concurrency: int | None = 2,
    hostname: str | None = None,
    timeout: float = 60.0,
    graceful_stop: bool = False,
) -> Iterator[ManagedProcess]:
    """Run ``pagemill worker`` until Celery logs its ``ready.`` line; end it at the end.

    Celery prints that line at INFO level, so the worker must not log above INFO. ``concurrency=None``
    leaves the worker its own default. At the end the worker is killed unless ``graceful_stop``: a warm
    shutdown on the embedded broker takes 5-6 s (Celery's loop for a polled broker notices the signal only
    when its 2 s wait for messages ends, then closes the pool), which dozens of stacks a run would pay.
    """
    # A unique node name per worker: Celery warns about duplicate nodenames when several share a broker.
    hostname = hostname or f"test-{secrets.token_hex(3)}@%h"
    args = ["worker", "--queues", queues, "--hostname", hostname]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    proc = pagemill_process(args, env, name=f"worker {hostname}")
    try:
        wait_for_log(proc, r"\bready\.", timeout)
        yield proc
    finally:
        if graceful_stop:
            proc.stop()
        else:
            proc.discard()


@contextlib.contextmanager
def pagemill_api(env: Mapping[str, str], *, timeout: float = 30.0) -> Iterator[tuple[ManagedProcess, str]]:
    """Run ``pagemill api`` on a free port until liveness answers; yield the handle and the base URL."""
    port = free_port()
    proc = pagemill_process(["api", "--host", "127.0.0.1", "--port", str(port)], env, name=f"api:{port}")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{base_url}/api/v1/health/live", timeout, handle=proc)
        yield proc, base_url
    finally:
        proc.stop()


@atexit.register
def _stop_everything() -> None:
    """Last resort: stop whatever a crashed fixture left registered."""
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            proc.send_signal(signal.SIGKILL)
            proc.popen.wait(5)
            proc._close()
    for cleanup in list(reversed(_CLEANUPS)):
        with contextlib.suppress(Exception):
            cleanup()


_CLEANUPS: list[Callable[[], None]] = []


# --------------------------------------------------------------------------------------------------
# Postgres

_PG_GLOBS = ("/usr/lib/postgresql/*/bin/{name}", "/usr/local/pgsql/bin/{name}", "/usr/pgsql-*/bin/{name}")


@dataclass
class PostgresServer:
    """A throwaway Postgres cluster in a temporary directory, run as a non-root user.

    ``restart()`` stops and starts it on the same port (for failure tests); ``url`` stays valid.
    """

    bindir: Path
    root: Path
    port: int
    user: str | None
    proc: ManagedProcess | None = None
    superuser: str = "postgres"

    @property
    def datadir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this cluster."""
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        """Create the cluster (``initdb``), owned by the non-root user when running as root."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.datadir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        cmd = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            self.superuser,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            # No fsync: the cluster is thrown away, and syncing costs seconds on slow CI disks.
            "--no-sync",
        ]
        result = subprocess.run(
            cmd, user=self.user, capture_output=True, text=True, cwd=self.root, timeout=120, check=False
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def start(self, timeout: float = 30.0) -> None:
        """Start the postmaster on ``port`` and wait until it accepts connections."""
        cmd = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            # The socket lives in the temp dir: /var/run/postgresql may not exist or be writable.
            "-k",
            str(self.root),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=32MB",
        ]
        self.proc = ManagedProcess(
            cmd,
            name=f"postgres:{self.port}",
            cwd=self.root,
            log_path=self.root / "postgres.log",
            user=self.user,
            # SIGQUIT is an immediate shutdown: the postmaster takes its backends down with it.
            death_signal=signal.SIGQUIT,
            # SIGINT is Postgres's "fast" shutdown: disconnect clients, checkpoint, exit.
            stop_signal=signal.SIGINT,
        )
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise ServiceError(f"postgres exited with {proc.returncode}:\n{proc.log_tail()}")
            return _pg_connectable(f"host=127.0.0.1 port={self.port} user={self.superuser} dbname=postgres")

        wait_until(ready, timeout, f"postgres on port {self.port}")

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the postmaster (fast shutdown, SIGKILL after ``timeout``)."""
        if self.proc is not None:
            self.proc.stop(timeout)
            self.proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop, stay down ``down_seconds``, start again on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def destroy(self) -> None:
        """Stop the server and delete the cluster."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _pg_connectable(conninfo: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(conninfo, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def _postgres_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres``; installs them as root if missing."""
    globs = [pattern.format(name="initdb") for pattern in _PG_GLOBS]
    initdb = _find_binary("initdb", globs)
    if initdb is None:
        _ensure_system_deps()
        initdb = _find_binary("initdb", globs)
    if initdb is None:
        raise ServiceError(
            "Postgres server binaries (initdb, postgres) not found: install the Debian package "
            "'postgresql' (scripts/install-system-deps.sh) or set PAGEMILL_TEST_DATABASE_URL"
        )
    # /usr/local/bin/initdb is often a symlink into the real bin dir where `postgres` also lives.
    bindir = Path(os.path.realpath(initdb)).parent
    if not (bindir / "postgres").exists():
        raise ServiceError(f"found {initdb} but no 'postgres' binary next to it in {bindir}")
    return bindir


def _unprivileged_user() -> str | None:
    """The user a spawned cluster runs as: None (ourselves) unless we are root, which initdb refuses."""
    if os.geteuid() != 0:
        return None
    for candidate in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(candidate)
            return candidate
    raise ServiceError("running as root but there is neither a 'postgres' nor a 'nobody' user")


@contextlib.contextmanager
def postgres_server(port: int | None = None) -> Iterator[PostgresServer]:
    """A throwaway Postgres cluster (initdb in a temp dir, free port), removed at the end."""
    user = _unprivileged_user()
    # /tmp rather than $TMPDIR: the unprivileged user must be able to reach the directory, and a root
    # TMPDIR such as /root/tmp is not traversable by it.
    base = "/tmp" if user is not None else None
    root = Path(tempfile.mkdtemp(prefix="pagemill-pg-", dir=base))
    server = PostgresServer(bindir=_postgres_bindir(), root=root, port=port or free_port(), user=user)
    _CLEANUPS.append(server.destroy)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()
        with contextlib.suppress(ValueError):
            _CLEANUPS.remove(server.destroy)


def _normalize_pg_url(url: str) -> str:
    """Make any Postgres URL use the psycopg 3 driver, which is the one the project installs."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _existing_server_user(host: str, port: int) -> str | None:
    """The first of postgres/root that can log into the server at host:port, or None."""
    if not port_open(host, port):
        return None
    for user in ("postgres", "root"):
        if _pg_connectable(f"host={host} port={port} user={user} dbname=postgres"):
            return user
    return None


@contextlib.contextmanager
def _temporary_database(host: str, port: int, user: str) -> Iterator[str]:
    """Create ``pagemill_test_<random>`` on an existing server; drop it (after kicking clients) at the end."""
    import psycopg

    name = f"pagemill_test_{secrets.token_hex(6)}"
    admin = f"host={host} port={port} user={user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            # Workers and pools may still hold connections; DROP DATABASE refuses while they exist.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    _CLEANUPS.append(drop)
    try:
        yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    finally:
        with contextlib.suppress(ValueError):
            _CLEANUPS.remove(drop)
        drop()


@contextlib.contextmanager
def postgres_url(spawn: bool = False) -> Iterator[str]:
    """A SQLAlchemy URL (``postgresql+psycopg://``) of an empty database that is gone afterwards.

    Order: ``PAGEMILL_TEST_DATABASE_URL`` (used as is, not dropped), a fresh database on a server at
    127.0.0.1:5432, a throwaway cluster. ``spawn=True`` forces the throwaway cluster.
    """
    if not spawn:
        configured = os.environ.get("PAGEMILL_TEST_DATABASE_URL")
        if configured:
            yield _normalize_pg_url(configured)
            return
        user = _existing_server_user("127.0.0.1", 5432)
        if user is not None:
            with _temporary_database("127.0.0.1", 5432, user) as url:
                yield url
            return
    with postgres_server() as server:
        yield server.url()


# --------------------------------------------------------------------------------------------------
# Redis


@dataclass
class RedisServer:
    """Connection info for a test Redis; a spawned one can be stopped, started and restarted.

    ``url`` stays the same across restarts. A borrowed server (no redis-server binary) cannot restart.
    """

    port: int
    db: int = 0
    binary: str | None = None
    root: Path | None = None
    proc: ManagedProcess | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/DB``."""
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    @property
    def restartable(self) -> bool:
        """True when this server is ours to stop and start (not a borrowed shared one)."""
        return self.binary is not None

    def start(self, timeout: float = 10.0) -> None:
        """Start redis-server on ``port`` and wait for PONG."""
        if self.binary is None or self.root is None:
            raise ServiceError("this Redis is a borrowed server; it cannot be started or stopped")
        cmd = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            # Pure in-memory: nothing written to disk, nothing restored after a restart.
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.root),
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            "",
        ]
        self.proc = ManagedProcess(cmd, name=f"redis:{self.port}", cwd=self.root, log_path=self.root / "log")
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise ServiceError(f"redis-server exited with {proc.returncode}:\n{proc.log_tail()}")
            return _redis_ping(self.port)

        wait_until(ready, timeout, f"redis on port {self.port}", interval=0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop redis-server (SIGTERM, SIGKILL after ``timeout``)."""
        if not self.restartable:
            raise ServiceError("this Redis is a borrowed server; it cannot be started or stopped")
        if self.proc is not None:
            self.proc.stop(timeout)
            self.proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop, stay down ``down_seconds``, start on the same port (data is lost, like a crash)."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def kill9(self) -> None:
        """Kill redis-server with SIGKILL (a crash, no shutdown); ``start()`` brings it back."""
        if self.proc is not None:
            self.proc.kill9()
            self.proc.stop()
            self.proc = None

    def restart_empty(self, down_seconds: float = 0.0) -> None:
        """Crash (SIGKILL), delete any dump or append-only file, stay down ``down_seconds``, start on the
        same port: every queued and unacknowledged message is gone, as after losing a Redis node."""
        self.kill9()
        if self.root is not None:
            for pattern in ("*.rdb", "*.aof", "appendonlydir"):
                for path in self.root.glob(pattern):
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
        time.sleep(down_seconds)
        self.start()


def _redis_ping(port: int, host: str = "127.0.0.1") -> bool:
    """PING over a raw socket: no client library involved in deciding readiness."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server on a free port; without the binary, a random DB 1-15 on 127.0.0.1:6379."""
    binary = _find_binary("redis-server", ["/usr/bin/redis-server", "/usr/local/bin/redis-server"])
    if binary is None and not _redis_ping(6379):
        _ensure_system_deps()
        binary = _find_binary("redis-server", ["/usr/bin/redis-server"])
    if binary is None:
        if not _redis_ping(6379):
            raise ServiceError(
                "no redis-server binary and nothing answers on 127.0.0.1:6379: install the Debian package "
                "'redis-server' (scripts/install-system-deps.sh)"
            )
        borrowed = RedisServer(port=6379, db=secrets.choice(range(1, 16)))
        try:
            yield borrowed
        finally:
            _flush_redis_db(borrowed.url)
        return
    root = Path(tempfile.mkdtemp(prefix="pagemill-redis-"))
    server = RedisServer(port=free_port(), binary=binary, root=root)

    def destroy() -> None:
        if server.proc is not None:
            server.proc.stop()
            server.proc = None
        shutil.rmtree(root, ignore_errors=True)

    _CLEANUPS.append(destroy)
    try:
        server.start()
        yield server
    finally:
        destroy()
        with contextlib.suppress(ValueError):
            _CLEANUPS.remove(destroy)


def _flush_redis_db(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """Only the URL of a :func:`redis_server` (``redis://127.0.0.1:PORT/0``)."""
    with redis_server() as server:
        yield server.url


# --------------------------------------------------------------------------------------------------
# S3


@dataclass(frozen=True)
class S3Server:
    """An S3-protocol endpoint with fake credentials (moto's server)."""

    endpoint_url: str
    access_key_id: str = S3_ACCESS_KEY_ID
    secret_access_key: str = S3_SECRET_ACCESS_KEY
    region: str = S3_REGION
    ca_file: Path | None = None
    """With TLS: the CA that signed the server's certificate (botocore reads it from AWS_CA_BUNDLE)."""

    def aws_env(self) -> dict[str, str]:
        """The standard AWS_* variables for tools that read credentials from the environment."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def client(self) -> Any:
        """A boto3 S3 client for this endpoint (path-style addressing, as moto expects)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
            verify=str(self.ca_file) if self.ca_file else None,
        )

    def reset(self) -> None:
        """Delete every bucket and object (moto's reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


@contextlib.contextmanager
def s3_server(tls: TestCertificates | None = None) -> Iterator[S3Server]:
    """Run moto's S3-compatible server as a subprocess on a free port, terminated at the end. With ``tls``
    (certificates for the name ``localhost``): over HTTPS at https://localhost."""
    port = free_port()
    env = dict(os.environ)
    env.update({"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY})
    command = [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    if tls is not None:
        command += ["--ssl-cert", str(tls.cert_file), "--ssl-key", str(tls.key_file)]
    proc = ManagedProcess(command, name=f"moto:{port}", env=env)
    if tls is None:
        server = S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    else:
        server = S3Server(endpoint_url=f"https://localhost:{port}", ca_file=tls.ca_file)
    context = tls.client_context() if tls is not None else None
    try:
        wait_http_ok(f"{server.endpoint_url}/moto-api/data.json", timeout=30, handle=proc, context=context)
        yield server
    finally:
        proc.stop()


# --------------------------------------------------------------------------------------------------
# NATS


@dataclass
class NatsServer:
    """A throwaway ``nats-server`` on a free port (JetStream on request); ``url`` stays the same across
    restarts."""

    port: int
    binary: str
    root: Path
    jetstream: bool = False
    proc: ManagedProcess | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT``."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it greets a client."""
        cmd = [self.binary, "--addr", "127.0.0.1", "--port", str(self.port)]
        if self.jetstream:
            cmd += ["--jetstream", "--store_dir", str(self.root / "jetstream")]
        self.proc = ManagedProcess(cmd, name=f"nats:{self.port}", cwd=self.root, log_path=self.root / "log")
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise ServiceError(f"nats-server exited with {proc.returncode}:\n{proc.log_tail()}")
            return _nats_greets(self.port) and (not self.jetstream or "Server is ready" in proc.log_text())

        wait_until(ready, timeout, f"nats-server on port {self.port}", interval=0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, SIGKILL after ``timeout``)."""
        if self.proc is not None:
            self.proc.stop(timeout)
            self.proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop, stay down ``down_seconds``, start on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()


def _nats_greets(port: int, host: str = "127.0.0.1") -> bool:
    """A NATS server sends ``INFO {...}`` first on every connection: no client library involved."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


def _nats_binary() -> str:
    """The ``nats-server`` binary; installs it as root if missing."""
    globs = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server"]
    binary = _find_binary("nats-server", globs)
    if binary is None:
        _ensure_system_deps()
        binary = _find_binary("nats-server", globs)
    if binary is None:
        raise ServiceError(
            "no nats-server binary: install the Debian package 'nats-server' (scripts/install-system-deps.sh)"
        )
    return binary


@contextlib.contextmanager
def nats_server(*, jetstream: bool = False) -> Iterator[NatsServer]:
    """A throwaway nats-server on a free port, always (never the machine's own NATS: tests must not depend
    on it nor see its traffic), stopped and removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="pagemill-nats-"))
    server = NatsServer(port=free_port(), binary=_nats_binary(), root=root, jetstream=jetstream)

    def destroy() -> None:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    _CLEANUPS.append(destroy)
    try:
        server.start()
        yield server
    finally:
        destroy()
        with contextlib.suppress(ValueError):
            _CLEANUPS.remove(destroy)


# --------------------------------------------------------------------------------------------------
# Pagemill configuration


# Fernet's key format (32 random bytes, url-safe base64), made once per test run.
TEST_SECRETS_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def distributed_env(
    pg_url: str, redis_url: str, s3: S3Server, bucket: str = "pagemill-test"
) -> dict[str, str]:
    """Environment for Pagemill processes in distributed mode (Postgres, Redis, S3), with one secrets key
    for the API and every worker (as a deployment must give them, to accept document passwords)."""
    return {
        "PAGEMILL_SECRETS__KEY": TEST_SECRETS_KEY,
        "PAGEMILL_DATABASE__URL": pg_url,
        "PAGEMILL_BROKER__URL": redis_url,
        "PAGEMILL_STORAGE__BACKEND": "s3",
        "PAGEMILL_STORAGE__S3_ENDPOINT_URL": s3.endpoint_url,
        "PAGEMILL_STORAGE__S3_BUCKET": bucket,
        "PAGEMILL_STORAGE__S3_REGION": s3.region,
        "PAGEMILL_STORAGE__S3_ACCESS_KEY_ID": s3.access_key_id,
        "PAGEMILL_STORAGE__S3_SECRET_ACCESS_KEY": s3.secret_access_key,
    }


def embedded_env(data_dir: Path | str) -> dict[str, str]:
    """Environment for Pagemill processes in embedded mode (everything under ``data_dir``)."""
    return {"PAGEMILL_DATA_DIR": str(data_dir)}
