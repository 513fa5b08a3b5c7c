"""Sampling the vLLM simulator during a benchmark job: ``/sim/stats`` and ``/metrics`` every 100 ms, and what
the samples show (steady-state completion rate, waiting share, mean running). Used by
:mod:`bench.gpu_saturation`."""

from __future__ import annotations

import contextlib
import re
import statistics
import threading
import time
from dataclasses import dataclass, field

import httpx

SAMPLE_INTERVAL_S = 0.1
_RUNNING = re.compile(r"^vllm:num_requests_running(?:\{[^}]*\})?\s+(\S+)", re.M)


@dataclass
class Sample:
    """One reading of the simulator."""

    t: float
    completed: int
    busy_s: float
    waiting_s: float
    running: float


@dataclass
class SimSampler:
    """Reads ``/sim/stats`` and ``/metrics`` every ``interval`` seconds in a thread."""

    base_url: str
    interval: float = SAMPLE_INTERVAL_S
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                with contextlib.suppress(httpx.HTTPError):
                    stats = client.get("/sim/stats").json()
                    match = _RUNNING.search(client.get("/metrics").text)
                    self.samples.append(
                        Sample(
                            t=started,
                            completed=int(stats["completed"]),
                            busy_s=float(stats["busy_seconds"]),
                            waiting_s=float(stats["waiting_seconds"]),
                            running=float(match.group(1)) if match else float(stats["running"]),
                        )
                    )
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> SimSampler:
        self._thread = threading.Thread(target=self._run, name="sim-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (nan for fewer than 2 points)."""
    if len(points) < 2:
        return float("nan")
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / den if den else float("nan")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation (nan for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def analyse(samples: list[Sample], max_num_seqs: int) -> dict[str, float]:
    """Steady-state slope, waiting share and mean running from the sampler's readings."""
    if not samples:
        return {}
    total = samples[-1].completed
    # Start-up and drain are excluded: once fewer than max_num_seqs pages remain, no client can fill the
    # server, so the window ends there at the latest.
    low, high = max(max_num_seqs, 0.1 * total), min(0.9 * total, total - max_num_seqs)
    window = [s for s in samples if low <= s.completed <= high]
    busy = [s for s in samples if s.running > 0 or 0 < s.completed < total]
    last = samples[-1]
    out = {
        "slope": _slope([(s.t, float(s.completed)) for s in window]),
        "window_s": window[-1].t - window[0].t if len(window) > 1 else float("nan"),
        "waiting_share_all": last.waiting_s / last.busy_s if last.busy_s else float("nan"),
        "mean_running_busy": statistics.fmean(s.running for s in busy) if busy else float("nan"),
        "mean_running_steady": statistics.fmean(s.running for s in window) if window else float("nan"),
        "waiting_share_steady": float("nan"),
    }
    if len(window) > 1:
        d_busy = window[-1].busy_s - window[0].busy_s
        if d_busy > 0:
            out["waiting_share_steady"] = (window[-1].waiting_s - window[0].waiting_s) / d_busy
    return out


@dataclass
class RoundResult:
    """What one measured job showed."""

    pages: int
    seconds: float
    steady_pages_per_s: float
    steady_window_s: float
    waiting_share_all: float
    waiting_share_steady: float
    mean_running_steady: float
    mean_running_busy: float
    latency_median_ms: float
    latency_p95_ms: float
    gpu_worker_cpu_ms_per_page: float
    sim_errors: int
    engines: dict[str, int]

    @property
    def e2e_pages_per_s(self) -> float:
        """Pages / (POST to succeeded)."""
        return self.pages / self.seconds
