"""One render process of a GPU worker, seen from the worker: start it, ask it for a page, stop it.

The wire format (:mod:`pagemill.documents.render_child`): one JSON request line in; one JSON header line out,
followed by exactly ``header["ok"]["length"]`` bytes for a rendered page. Reads wait with ``poll`` up to a
deadline, so a hung process is found out, and an end of file means the process died.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any, Final

HEADER_MAX_BYTES: Final = 64 * 1024
_PASSED_ENV: Final = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TMPDIR", "HOME")
"""The only variables a render process gets: it parses hostile files and needs no secret of the worker's."""


class ProcessDied(Exception):
    """The render process ended without answering."""


class RenderProcess:
    """One render process and the answer buffer of its pipe. Used by one thread at a time."""

    def __init__(self, memory_mb: int) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "pagemill.documents.render_child", str(memory_mb), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            env={name: os.environ[name] for name in _PASSED_ENV if name in os.environ},
        )
        self._buffer = bytearray()

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def ask(self, request: dict[str, Any], deadline: float, max_bytes: int) -> tuple[dict[str, Any], bytes]:
        """Send one request; return the answer's header and payload. Raises ProcessDied or TimeoutError."""
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(json.dumps(request).encode() + b"\n")
        except (BrokenPipeError, OSError):
            raise ProcessDied() from None
        line = self._read_line(deadline)
        header = json.loads(line)
        if not isinstance(header, dict):
            raise ValueError("the answer is not an object")
        ok = header.get("ok")
        length = ok.get("length") if isinstance(ok, dict) else 0
        if not isinstance(length, int) or not 0 <= length <= max_bytes:
            raise ValueError(f"the answer announces {length!r} bytes")
        return header, self._read_exactly(length, deadline)

    def _fill(self, deadline: float) -> None:
        """Read what the pipe has (waiting up to ``deadline``) into the buffer."""
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        # poll, not select: a GPU worker holds hundreds of sockets, and select() stops at descriptor 1024.
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise TimeoutError()
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise ProcessDied()
        self._buffer += chunk

    def _read_line(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > HEADER_MAX_BYTES:
                raise ValueError("the answer's header is too long")
            self._fill(deadline)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def _read_exactly(self, length: int, deadline: float) -> bytes:
        while len(self._buffer) < length:
            self._fill(deadline)
        payload = bytes(self._buffer[:length])
        del self._buffer[:length]
        return payload

    def stop(self, grace_s: float) -> None:
        """Close its stdin (it leaves by itself), and kill it if it has not left after ``grace_s``."""
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_pipes()

    def kill(self) -> None:
        """End it now and reap it."""
        with contextlib.suppress(OSError):
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.popen.stdin, self.popen.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
