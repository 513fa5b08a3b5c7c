"""The render process of a GPU worker: renders and encodes pages on request, one at a time.

Run by :mod:`pagemill.documents.render_pool` as ``python -m pagemill.documents.render_child``. It reads one
JSON request per line on stdin and answers on stdout with one JSON header line, followed for a rendered
page by exactly ``length`` bytes: the page's base64 text. JSON and raw bytes, never a pickle: a parser
subverted by a hostile file must not be able to run code in the worker through the answer.

Documents stay open between requests (a few, by path and file identity), so a document's pages are opened
once per process, not once per page. The process caps its own address space, ignores the signals a
terminal or a supervisor sends its whole process group (the worker decides when it ends), and leaves when
its stdin closes or its parent is gone.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import resource
import signal
import sys
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO, Final

from PIL import Image

from pagemill.documents.kinds import DocumentKind
from pagemill.documents.source import DocumentSource, configure_pillow, open_source
from pagemill.engines.page_image import ImageSpec, encode_image
from pagemill.errors import PagemillError, ProcessingError
from pagemill.settings import LimitSettings

log = logging.getLogger("pagemill.render")

_MB: Final = 1024 * 1024
_OPEN_DOCUMENTS: Final = 4
_PARENT_CHECK_S: Final = 0.5


class _Documents:
    """The documents this process has open, most recently used last."""

    def __init__(self) -> None:
        self._open: OrderedDict[tuple[Any, ...], DocumentSource] = OrderedDict()

    def get(
        self, path: Path, kind: DocumentKind, password: str | None, limits: LimitSettings
    ) -> DocumentSource:
        """The open document at ``path``; a file replaced at the same path is opened anew."""
        stat = path.stat()
        key = (
            str(path),
            stat.st_ino,
            stat.st_size,
            stat.st_mtime_ns,
            kind,
            password,
            limits.model_dump_json(),
        )
        source = self._open.pop(key, None)
        if source is None:
            source = open_source(path, kind, password=password, limits=limits)
            while len(self._open) >= _OPEN_DOCUMENTS:
                self._open.popitem(last=False)[1].close()
        self._open[key] = source
        return source


def render_request(request: dict[str, Any], documents: _Documents) -> tuple[dict[str, Any], bytes]:
    """Render and encode the requested page; the answer's header and its base64 bytes."""
    limits = LimitSettings.model_validate(request["limits"])
    configure_pillow(limits)
    spec = ImageSpec.from_dict(request["spec"])
    source = documents.get(Path(request["path"]), DocumentKind(request["kind"]), request["password"], limits)
    started = time.perf_counter()
    image = source.render(int(request["index"]), dpi=int(request["dpi"]), max_side=spec.max_side)
    rendered = time.perf_counter()
    encoded = encode_image(image, spec)
    del image
    header = {
        "mime": encoded.mime,
        "width": encoded.size[0],
        "height": encoded.size[1],
        "length": len(encoded.base64),
        "render_ms": (rendered - started) * 1000.0,
        "encode_ms": (time.perf_counter() - rendered) * 1000.0,
    }
    return {"ok": header}, encoded.base64


def _answer(line: bytes, documents: _Documents) -> tuple[dict[str, Any], bytes, bool]:
    """(header, payload, keep going) for one request line."""
    try:
        request = json.loads(line)
        header, payload = render_request(request, documents)
        return header, payload, True
    except FileNotFoundError:
        return {"missing": True}, b"", True
    except PagemillError as exc:
        return {"error": exc.to_dict()}, b"", True
    except MemoryError:
        # The heap may be half-built; answer while there is room, then start afresh in a new process.
        error = ProcessingError("The page needs more memory to render than allowed.", reason="memory_limit")
        return {"error": error.to_dict()}, b"", False
    except Exception as exc:  # hostile bytes break parsers in many ways; the page fails, the process goes on
        log.warning("render process: page failed: %r", exc)
        error = ProcessingError("The page could not be rendered.", reason="render_failed")
        return {"error": error.to_dict()}, b"", True


def _write_all(out: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = out.write(view)
        view = view[written or 0 :]


def _watch_parent(parent: int) -> None:
    """Leave at once when the worker that started this process is gone, even in the middle of a page."""
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(_PARENT_CHECK_S)


def _limit_memory(budget_mb: int) -> None:
    """Cap the address space at what the process has now plus ``budget_mb``."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            current = int(statm.read().split()[0]) * resource.getpagesize()
    except OSError:
        current = 0
    soft = current + budget_mb * _MB
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def serve(stdin: BinaryIO, out: BinaryIO, memory_mb: int, parent: int) -> None:
    """Answer requests from ``stdin`` on ``out`` until stdin closes."""
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    _limit_memory(memory_mb)
    documents = _Documents()
    for line in stdin:
        header, payload, keep_going = _answer(line, documents)
        _write_all(out, json.dumps(header).encode() + b"\n" + payload)
        out.flush()
        if not keep_going:
            return


def main() -> None:
    """Entry point: ``python -m pagemill.documents.render_child MEMORY_MB PARENT_PID``."""
    memory_mb, parent = int(sys.argv[1]), int(sys.argv[2])
    # The worker ends this process by closing its stdin; Ctrl-C or a SIGTERM sent to the whole group must
    # not cut a page short while the worker is still finishing its tasks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A crash is reported by the worker (the page is retried or failed); a C traceback here is only noise.
    faulthandler.disable()
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Answers go to a private copy of stdout; anything a library prints goes to stderr, not into the answers.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    serve(sys.stdin.buffer, out, memory_mb, parent)


if __name__ == "__main__":
    main()
