"""Pagemill: a self-hosted document-to-text job API."""

__version__ = "0.1.0"
