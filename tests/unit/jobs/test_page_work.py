"""The page worker's signals, without I/O."""

from __future__ import annotations

import pickle

from pagemill.errors import EngineUnavailable
from pagemill.jobs.page_work import PagesDeferred


def test_pages_deferred_survives_the_trip_from_a_pool_process() -> None:
    """Celery's prefork pool pickles a task's exception (inside its Retry) to send it to the parent."""
    deferred = PagesDeferred(2.5, EngineUnavailable("The model server is down.", engine="vllm"))

    copy = pickle.loads(pickle.dumps(deferred))

    assert isinstance(copy, PagesDeferred)
    assert copy.delay_s == 2.5
    assert copy.cause.to_dict() == deferred.cause.to_dict()
    assert str(copy) == "The model server is down."
