"""Test-only fault injection, loaded by Python at start-up when this folder is on PYTHONPATH.

A worker started with it dies by SIGKILL (as under the OOM killer, or a segfault in a parser) whenever one
of its pool processes reads a text-layer page whose text contains POISON_MARK: a poison page that kills its
worker every time. With POISON_FLAG_ENV naming a file, only while that file exists: deleting it is the fix
deployed (tests/e2e/test_dead_letters.py replays the page then). Nothing in the product knows about it.
"""

import os
import signal

POISON_MARK = "POISON-PAGE-KILLS-WORKER"
POISON_FLAG_ENV = "PAGEMILL_TEST_POISON_FLAG"


def _poison_pool_process(**_: object) -> None:
    from pagemill.jobs import reading

    original = reading.read_page_text_layer

    def read_page_text_layer(source, index, settings):  # type: ignore[no-untyped-def]
        result = original(source, index, settings)
        flag = os.environ.get(POISON_FLAG_ENV)
        if result is not None and POISON_MARK in result.text and (not flag or os.path.exists(flag)):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    reading.read_page_text_layer = read_page_text_layer


try:
    from celery.signals import worker_process_init

    worker_process_init.connect(_poison_pool_process, weak=False)
except ImportError:  # not a worker's environment
    pass
