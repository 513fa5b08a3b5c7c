"""What authentication and rate limiting cost per request: the same API with and without them.

One API process per configuration, no worker (the job stays queued: this measures the gateway, not the
pipeline). Clients in threads poll ``GET /api/v1/jobs/{id}`` of a job of their tenant as fast as they can.
Three configurations, alternating round by round (medians, ratios to the bare one):
- bare: ``auth.enabled=false`` and slowapi switched off (its own ``RATELIMIT_ENABLED=false``);
- limiter: no key, but the moving-window limit checked and counted (memory embedded, Redis distributed);
- full: the API key looked up in the database (prefix index, constant-time digest comparison) + limiter.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from bench.common import fmt, log, median, run_and_record, run_stamp, table
from bench.stacks import distributed_env_stack, temp_data_dir
from tests.support.documents import make_text_pdf
from tests.support.services import pagemill_api, pagemill_process

CLIENTS = 8
SECONDS = 6.0
ROUNDS = 3
# Far above what 2 cores can serve, so the limiter counts every request but never refuses one.
UNLIMITED_RATE = "1000000/minute"


def _run_cli(env: Mapping[str, str], args: list[str]) -> str:
    proc = pagemill_process(args, env, name=args[0])
    code = proc.wait(timeout=120)
    if code != 0:
        raise RuntimeError(f"pagemill {' '.join(args)} failed:\n{proc.log_tail()}")
    return proc.log_text()


@contextlib.contextmanager
def _api(env: Mapping[str, str]) -> Iterator[str]:
    with pagemill_api(env, timeout=60) as (_, base_url):
        yield base_url


def _load(base_url: str, path: str, headers: dict[str, str]) -> tuple[float, float]:
    """Requests/s and median latency (ms) of CLIENTS threads for SECONDS."""
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []
    stop_at = time.perf_counter() + SECONDS

    def client(index: int) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                response = http.get(path)
                latencies[index].append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    return

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    begun = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begun
    if errors:
        raise RuntimeError(f"a request failed: {errors[0]}")
    flat = [value for values in latencies for value in values]
    return len(flat) / elapsed, statistics.median(flat) * 1000


def _measure_mode(label: str, env: dict[str, str], workdir: Path) -> dict[str, list[tuple[float, float]]]:
    env = {**env, "PAGEMILL_LOG_LEVEL": "WARNING", "PAGEMILL_TIERS__ENTERPRISE__RATE_LIMIT": UNLIMITED_RATE}
    _run_cli(env, ["migrate"])
    created = json.loads(
        [
            line
            for line in _run_cli(env, ["keys", "create", "--tenant", "default", "--json"]).splitlines()
            if line.startswith("{")
        ][-1]
    )
    headers = {"Authorization": f"Bearer {created['secret']}"}
    document = make_text_pdf(workdir / f"{label}.pdf", ["auth overhead"])
    with _api(env) as base_url, httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        with document.open("rb") as handle:
            response = http.post("/api/v1/documents", files={"file": (document.name, handle)})
        response.raise_for_status()
        job_path = f"/api/v1/jobs/{response.json()['id']}"
    anonymous = {**env, "PAGEMILL_AUTH__ENABLED": "false"}
    configs = {
        "bare": ({**anonymous, "RATELIMIT_ENABLED": "false"}, {}),
        "limiter": (anonymous, {}),
        "full": (env, headers),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
    for round_number in range(ROUNDS):
        for name, (config_env, config_headers) in configs.items():
            with _api(config_env) as base_url:
                _load(base_url, job_path, config_headers)  # warm-up: connections, caches
                rate, latency = _load(base_url, job_path, config_headers)
            results[name].append((rate, latency))
            log(f"  {label} round {round_number + 1} {name}: {rate:.0f} req/s, median {latency:.1f} ms")
    return results


def run() -> str:
    """Measure both modes; return the Markdown block."""
    rows = []
    with temp_data_dir() as data_dir:
        workdir = Path(data_dir)
        modes = {"embedded (SQLite, limits in memory)": {"PAGEMILL_DATA_DIR": str(workdir / "embedded")}}
        services, distributed = distributed_env_stack()
        with services:
            modes["distributed (Postgres, limits in Redis)"] = {
                **distributed,
                "PAGEMILL_DATA_DIR": str(workdir / "distributed"),
            }
            for label, env in modes.items():
                results = _measure_mode(label.split()[0], env, workdir)
                bare_rate = median([r for r, _ in results["bare"]])
                bare_ms = median([ms for _, ms in results["bare"]])
                for name, runs in results.items():
                    rate, ms = median([r for r, _ in runs]), median([ms for _, ms in runs])
                    rows.append(
                        [
                            label,
                            name,
                            fmt(rate, 0),
                            fmt(rate / bare_rate, 2),
                            fmt(ms, 1),
                            fmt(ms - bare_ms, 2),
                            ", ".join(fmt(r, 0) for r, _ in runs),
                        ]
                    )
    header = ["mode", "config", "req/s", "ratio to bare", "median ms", "added ms", "req/s per round"]
    return (
        f"### Authentication and rate-limit overhead ({run_stamp()})\n\n"
        f"`GET /api/v1/jobs/{{id}}`, {CLIENTS} client threads for {SECONDS:.0f} s per measurement, one API "
        f"process, {ROUNDS} alternating rounds (medians). bare: no auth, no limiter; limiter: slowapi "
        "moving window counted per request; full: API key checked in the database + limiter.\n\n"
        + table(header, rows)
    )


def main(argv: list[str] | None = None) -> str:
    """``python -m bench.auth_overhead``."""
    argparse.ArgumentParser(prog="python -m bench.auth_overhead", description=__doc__).parse_args(argv)
    return run_and_record("auth_overhead", run)


if __name__ == "__main__":
    main()
