"""Celery entrypoint: thin tasks over the service layer."""
