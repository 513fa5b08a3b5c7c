"""Webhooks (Standard Webhooks): tenants' endpoints and jobs' callback URLs, signed, retried, recorded."""
