"""Tenants, API keys, OIDC tokens, tiers, usage quotas and the audit log."""
