"""Pagemill test suite: unit/ (no I/O), integration/ (real services), e2e/ (whole flows over HTTP)."""
