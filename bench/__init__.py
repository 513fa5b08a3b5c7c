"""Pagemill benchmarks: commands that measure the service and record results in docs/benchmarks.md.

Run them with ``python -m bench [names...]`` (``make bench``); see docs/benchmarks.md for the method and
targets. Nothing here is a test: speed is judged in that document, never in a timed unit test.
"""
