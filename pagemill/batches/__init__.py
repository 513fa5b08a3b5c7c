"""Batches: many documents (files, URLs, upload ids) in one submission with one set of options."""
