"""Start the vLLM simulator (:mod:`tests.support.vllm_simulator`) as a subprocess and talk to it.

::

    with vllm_simulator(max_num_seqs=4, tokens=100) as sim:
        engine_settings.base_url = sim.base_url
        sim.set_faults(overload_503=2)
        ...
        assert sim.stats()["completed"] == 10

Keyword options become command-line flags (``max_num_seqs=4`` → ``--max-num-seqs 4``; ``None`` is left
out). The process runs in its own process group with a log file (see :class:`ManagedProcess`) and is
stopped when the block ends, also when it raises.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.services import PYTHON, REPO_ROOT, ManagedProcess, free_port, start_process, wait_http_ok

DEFAULT_MODEL = "deepseek-ai/DeepSeek-OCR"


@dataclass
class SimulatorHandle:
    """A running simulator: its URL, its process and helpers for the ``/sim/*`` control endpoints."""

    base_url: str
    port: int
    model: str
    process: ManagedProcess

    @property
    def openai_base_url(self) -> str:
        """``<base_url>/v1``, what OpenAI client libraries call ``base_url``."""
        return f"{self.base_url}/v1"

    def _request(self, method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
        response = httpx.request(method, f"{self.base_url}{path}", json=json, timeout=10.0)
        response.raise_for_status()
        return response

    def set_faults(self, **faults: float) -> dict[str, Any]:
        """Arm faults (``overload_503=3``, ``slow_ms=200`` ...), replacing the given ones; returns all."""
        result: dict[str, Any] = self._request("POST", "/sim/faults", json=faults).json()
        return result

    def faults(self) -> dict[str, Any]:
        """The faults still armed."""
        result: dict[str, Any] = self._request("GET", "/sim/faults").json()
        return result

    def stats(self) -> dict[str, Any]:
        """``GET /sim/stats``: running, waiting, completed, errors, busy/waiting seconds, capacity ..."""
        result: dict[str, Any] = self._request("GET", "/sim/stats").json()
        return result

    def metrics(self) -> str:
        """``GET /metrics`` as Prometheus text."""
        return self._request("GET", "/metrics").text

    def reset(self) -> None:
        """Clear faults and statistics."""
        self._request("POST", "/sim/reset")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the simulator's log, for failure messages."""
        return self.process.log_tail(lines)


def simulator_args(**options: Any) -> list[str]:
    """Command-line flags for ``options``: ``True`` → bare flag, ``None``/``False`` → left out."""
    args: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        else:
            args.extend([flag, str(value)])
    return args


@contextlib.contextmanager
def vllm_simulator(*, timeout: float = 20.0, **options: Any) -> Iterator[SimulatorHandle]:
    """Run the simulator on a free port until ``/health`` answers; yield its handle; stop it at the end.

    ``options`` are the simulator's flags with underscores (``max_num_seqs``, ``prefill_ms``,
    ``ms_per_token``, ``tokens``, ``ocr``, ``model``, ``overload_503`` ... see
    ``python -m tests.support.vllm_simulator --help``).
    """
    port = free_port()
    cmd = [PYTHON, "-m", "tests.support.vllm_simulator", "--port", str(port), *simulator_args(**options)]
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    proc = start_process(cmd, env, name=f"vllm-sim:{port}", cwd=REPO_ROOT)
    handle = SimulatorHandle(
        base_url=f"http://127.0.0.1:{port}",
        port=port,
        model=str(options.get("model") or DEFAULT_MODEL),
        process=proc,
    )
    try:
        wait_http_ok(f"{handle.base_url}/health", timeout, handle=proc)
        yield handle
    finally:
        proc.stop()
