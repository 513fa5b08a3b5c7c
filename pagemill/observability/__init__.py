"""Operations' view of a running Pagemill: what waits on each queue, which workers are alive, whether the
dependencies answer; for the API's ``/metrics`` (:mod:`.collector`) and ``GET /api/v1/health``
(:mod:`.health`). Counting jobs as they start and end is :mod:`.job_metrics`; the metric objects are in
:mod:`pagemill.metrics`, the log format in :mod:`pagemill.logging`."""
