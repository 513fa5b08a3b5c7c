"""Bulk work from the command line: `pagemill convert` (in this process), `pagemill submit` and
`pagemill backfill` (against a running server).

:mod:`.inputs` finds the documents and names their results, :mod:`.display` shows progress and the
summary, :mod:`.api_client` talks to the API (shared by submit and backfill), :mod:`.submit`,
:mod:`.backfill` (with :mod:`.sources` and :mod:`.checkpoint`) do the work.
"""
