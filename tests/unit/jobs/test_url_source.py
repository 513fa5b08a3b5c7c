"""Names of fetched documents."""

from __future__ import annotations

import pytest

from pagemill.jobs.url_source import filename_of


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.com/reports/annual%20report.pdf?x=1", "annual report.pdf"),
        ("https://example.com/reports/", "reports"),
        ("https://example.com", "example.com"),
        ("https://example.com/a/..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("https://example.com/%00evil%0A.pdf", "evil_.pdf"),
    ],
)
def test_a_fetched_document_is_named_after_the_last_segment_of_its_url(url: str, name: str) -> None:
    assert filename_of(url) == name
