"""Retention: originals and results expire per tier; a tenant may purge a finished job at once; results
can be downloaded through short-lived URLs."""
