"""What every benchmark shares: machine and version info, CPU and RSS sampling, the results file, the rounds.

The stacks under test are started by :mod:`bench.stacks`; jobs are timed with :mod:`bench.jobs`; results
blocks are put together with :mod:`bench.report`.

Results live in docs/benchmarks.md under "## Results", one block per benchmark between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` markers, so running one benchmark rewrites only its
own block (and the machine table above the blocks).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
FINAL_STATES = {"succeeded", "failed", "cancelled"}

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.services import descendant_pids  # noqa: E402

# --------------------------------------------------------------------------------------------------
# Machine, versions, formatting


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _os_name() -> str:
    with contextlib.suppress(OSError), open("/etc/os-release", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"') + f" (kernel {platform.release()})"
    return f"{platform.system()} {platform.release()}"


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _command_version(cmd: Sequence[str], pattern: str) -> str:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def machine_info() -> dict[str, str]:
    """CPU, cores, RAM, OS, Python and the versions of what the benchmarks exercise."""
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "RAM": f"{_ram_gib():.1f} GiB",
        "OS": _os_name(),
        "Python": platform.python_version(),
        "pypdfium2": _package_version("pypdfium2"),
        "celery": _package_version("celery"),
        "fastapi": _package_version("fastapi"),
        "sqlalchemy": _package_version("sqlalchemy"),
        "uvicorn": _package_version("uvicorn"),
        "tesseract": _command_version(["tesseract", "--version"], r"tesseract\s+(\S+)"),
        "pdftotext": _command_version(["pdftotext", "-v"], r"pdftotext version\s+(\S+)"),
    }


def now_utc() -> str:
    """The date and time of a run, to the minute, in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def git_revision() -> str:
    """The checkout's commit (with ``+dirty`` when the tree has changes)."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    """The median (``nan`` for no values)."""
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 1) -> str:
    """A number with ``digits`` decimals (``-`` for nan)."""
    return "-" if value != value else f"{value:,.{digits}f}"


def verdict(ok: bool) -> str:
    """``met`` or ``MISSED`` for a results table."""
    return "met" if ok else "**MISSED**"


# --------------------------------------------------------------------------------------------------
# docs/benchmarks.md

_RESULTS_HEADING = "## Results"


def write_section(name: str, body: str) -> None:
    """Replace (or append) benchmark ``name``'s block under Results; refresh the machine table."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else f"# Benchmarks\n\n{_RESULTS_HEADING}\n"
    if _RESULTS_HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{_RESULTS_HEADING}\n"
    head, results = text.split(_RESULTS_HEADING, 1)
    block = f"<!-- bench:{name} -->\n{body.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    if pattern.search(results):
        results = pattern.sub(lambda _: block, results)
    else:
        results = results.rstrip("\n") + "\n\n" + block + "\n"
    machine = "\n".join(
        [
            "<!-- bench:machine -->",
            f"Last run: {now_utc()}, revision {git_revision()}. Each block below names its own date.",
            "",
            table(["machine", "value"], list(machine_info().items())),
            "<!-- /bench:machine -->",
        ]
    )
    machine_pattern = re.compile(r"<!-- bench:machine -->.*?<!-- /bench:machine -->", re.S)
    if machine_pattern.search(results):
        results = machine_pattern.sub(lambda _: machine, results)
    else:
        results = machine + "\n\n" + results.lstrip("\n")
    DOC.write_text(head + _RESULTS_HEADING + "\n\n" + results.strip("\n") + "\n", encoding="utf-8")


def run_stamp() -> str:
    """The line that opens every results block: date, revision, cores."""
    return f"Run {now_utc()}, revision {git_revision()}, {os.cpu_count()} cores ({_cpu_model()})."


# --------------------------------------------------------------------------------------------------
# Memory sampling from /proc


def rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None  # a zombie has no VmRSS line


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces and parentheses); [0] is field 3, the state.
    return stat[stat.rfind(")") + 2 :].split()


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid``, or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of ``pids``, including their children that have been waited for."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            # utime, stime, cutime, cstime are fields 14-17 of /proc/PID/stat.
            total += sum(int(value) for value in fields[11:15])
    return total / _CLOCK_TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and every live descendant (with their reaped children)."""
    return cpu_seconds([root, *descendant_pids(root)])


def _system_jiffies() -> tuple[int, int]:
    """(busy, steal) jiffies of the whole machine since boot, from the ``cpu`` line of /proc/stat."""
    with open("/proc/stat", encoding="utf-8") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


def _own_cpu_ticks(pid: int) -> int | None:
    """User + system clock ticks of ``pid`` itself (not its children), None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[11]) + int(fields[12]) if fields else None


@dataclass
class LoadMeter:
    """How much CPU other processes (not this one and its descendants) used, and how much was stolen.

    These machines are shared: a benchmark that ran next to someone's test suite says so in its results.
    This process's tree is sampled every :attr:`interval` seconds, each process's own time: a benchmark's
    processes that end unwaited (a pool killed with its stack, reparented to init) still count as its own,
    up to their last sample, instead of as someone else's load.
    """

    interval: float = 0.25
    started: float = 0.0
    busy0: int = 0
    steal0: int = 0
    _first: dict[int, int] = field(default_factory=dict)
    _last: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LoadMeter:
        self.started = time.monotonic()
        self.busy0, self.steal0 = _system_jiffies()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, name="load-meter", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self, *, first: bool = False) -> None:
        for pid in (os.getpid(), *descendant_pids(os.getpid())):
            ticks = _own_cpu_ticks(pid)
            if ticks is None:
                continue
            if first:
                self._first[pid] = ticks
            self._last[pid] = ticks

    def summary(self) -> str:
        """One sentence: seconds, foreign CPU in cores, steal share."""
        seconds = max(time.monotonic() - self.started, 1e-9)
        busy, steal = _system_jiffies()
        self._sample()
        mine = sum(ticks - self._first.get(pid, 0) for pid, ticks in self._last.items()) / _CLOCK_TICKS
        foreign = max((busy - self.busy0) / _CLOCK_TICKS - mine, 0.0)
        cores = os.cpu_count() or 1
        stolen = (steal - self.steal0) / _CLOCK_TICKS / (seconds * cores)
        return (
            f"Machine load during this benchmark ({seconds:.0f} s): other processes used "
            f"{foreign / seconds:.2f} of {cores} cores on average; {stolen:.0%} of CPU time was stolen by "
            "the hypervisor."
        )


def cmdline(pid: int) -> str:
    """A short command line for ``pid``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            parts = handle.read().split(b"\0")
    except OSError:
        return "?"
    words = [
        Path(p.decode(errors="replace")).name if i == 0 else p.decode(errors="replace")
        for i, p in enumerate(parts)
        if p
    ]
    return " ".join(words)[:80]


@dataclass
class RssSampler:
    """Samples the RSS of a process and (optionally) all its descendants every ``interval`` seconds."""

    root_pid: int
    interval: float = 0.05
    descendants: bool = True
    peak_per_pid: dict[int, int] = field(default_factory=dict)
    label_per_pid: dict[int, str] = field(default_factory=dict)
    parent_per_pid: dict[int, int | None] = field(default_factory=dict)
    peak_total: int = 0
    first_total: int = 0
    last_total: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> int:
        """Take one sample now; return the total RSS in KiB."""
        pids = [self.root_pid, *(descendant_pids(self.root_pid) if self.descendants else [])]
        total = 0
        for pid in pids:
            rss = rss_kib(pid)
            if rss is None:
                continue
            total += rss
            if rss > self.peak_per_pid.get(pid, -1):
                self.peak_per_pid[pid] = rss
                if pid not in self.label_per_pid:
                    self.label_per_pid[pid] = cmdline(pid)
                    self.parent_per_pid[pid] = parent_pid(pid)
        if self.samples == 0:
            self.first_total = total
        self.samples += 1
        self.last_total = total
        self.peak_total = max(self.peak_total, total)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


def mib(kib: int) -> str:
    """KiB as a MiB string."""
    return f"{kib / 1024:,.0f}"


# --------------------------------------------------------------------------------------------------
# Running a benchmark


def log(message: str) -> None:
    """Progress on stderr, flushed."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_and_record(name: str, produce: Callable[[], str]) -> str:
    """Run a benchmark under a LoadMeter, print its block with the machine load, record it as ``name``."""
    with LoadMeter() as load:
        block = produce()
    block += "\n\n" + load.summary()
    print(block)
    write_section(name, block)
    return block


def alternate(rounds: int, first: Callable[[], None], second: Callable[[], None]) -> None:
    """Run ``first`` then ``second``, swapping the order every round (``first`` leads in the first round)."""
    # A change in the machine's load (these machines are shared) then hits both sides alike.
    for number in range(rounds):
        for step in (first, second) if number % 2 == 0 else (second, first):
            step()


def rotate(rounds: int, *steps: Callable[[], None]) -> None:
    """Run every step once per round, the order rotated by one each round (the first step leads first)."""
    for number in range(rounds):
        shift = number % len(steps)
        for step in steps[shift:] + steps[:shift]:
            step()
