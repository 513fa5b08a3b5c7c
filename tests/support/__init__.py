"""Test support code: real services (services.py) for integration and e2e tests."""
