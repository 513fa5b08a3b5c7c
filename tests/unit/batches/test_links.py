"""Signed result links: only the signer's key makes them, nothing in them can be changed, they expire."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet

from pagemill.errors import Forbidden, LinkExpired, SecretsNotConfigured
from pagemill.jobs.options import OutputFormat
from pagemill.retention import links
from pagemill.retention.downloads import download_name
from pagemill.settings import Settings, StorageSettings

NOW = 1_800_000_000.0
JOB = "0b8f5a3c-1d2e-4f60-8a9b-0c1d2e3f4a5b"


def settings(key: str | None = None, *, ttl_s: int = 300, **fields: object) -> Settings:
    """Settings with secrets.key (None: unset) and the link lifetime."""
    return Settings.model_validate(
        {"secrets": {"key": key}, "storage": StorageSettings(result_url_ttl_s=ttl_s), **fields}
    )


def parts(path: str) -> tuple[str, OutputFormat, int, str]:
    """(job id, format, expires, signature) of a signed path."""
    url = urlsplit(path)
    _, job_id, fmt = url.path.rsplit("/", 2)
    query = parse_qs(url.query)
    return job_id, OutputFormat(fmt), int(query["expires"][0]), query["signature"][0]


def test_a_signed_link_verifies_until_it_expires() -> None:
    signer = settings(Fernet.generate_key().decode(), ttl_s=60)
    path = links.signed_path(signer, JOB, OutputFormat.JSON, now=NOW)
    assert path.startswith(f"{links.LINK_PATH}/{JOB}/json?")
    job_id, fmt, expires, signature = parts(path)
    assert expires == int(NOW) + 60
    links.verify(signer, job_id, fmt, expires, signature, now=NOW + 59)
    with pytest.raises(LinkExpired):
        links.verify(signer, job_id, fmt, expires, signature, now=NOW + 60)


@pytest.mark.parametrize("change", ["job", "format", "expires", "signature", "not_ascii"])
def test_nothing_in_a_link_can_be_changed(change: str) -> None:
    signer = settings(Fernet.generate_key().decode())
    job_id, fmt, expires, signature = parts(links.signed_path(signer, JOB, OutputFormat.TEXT, now=NOW))
    if change == "job":
        job_id = job_id.replace("0b8f", "0b8e")
    elif change == "format":
        fmt = OutputFormat.MARKDOWN
    elif change == "expires":
        expires += 3600  # a longer life
    elif change == "signature":
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    else:  # anyone can send anything: refused, never a crash
        signature = signature[:-1] + "\u00e9"
    with pytest.raises(Forbidden):
        links.verify(signer, job_id, fmt, expires, signature, now=NOW)


def test_another_key_does_not_verify_and_no_key_signs_nothing(tmp_path: Path) -> None:
    signer = settings(Fernet.generate_key().decode())
    job_id, fmt, expires, signature = parts(links.signed_path(signer, JOB, OutputFormat.TEXT, now=NOW))
    with pytest.raises(Forbidden):
        links.verify(settings(Fernet.generate_key().decode()), job_id, fmt, expires, signature, now=NOW)
    # Distributed without secrets.key: nothing to sign with (embedded mode makes a key file instead).
    distributed = settings(None, database={"url": "postgresql://db/pagemill"})
    with pytest.raises(SecretsNotConfigured):
        links.signed_path(distributed, JOB, OutputFormat.TEXT)
    embedded = settings(None, data_dir=tmp_path)
    path = links.signed_path(embedded, JOB, OutputFormat.TEXT, now=NOW)
    links.verify(embedded, *parts(path), now=NOW)
    assert (tmp_path / "secret.key").exists()


@pytest.mark.parametrize(
    ("filename", "fmt", "expected"),
    [
        ("report.pdf", OutputFormat.MARKDOWN, "report.md"),
        ("scan.tiff", OutputFormat.JSON, "scan.json"),
        ("Bericht_Größe.pdf", OutputFormat.TEXT, "Bericht_Gr__e.txt"),
        (None, OutputFormat.TEXT, "document.txt"),
    ],
)
def test_download_names_are_ascii_with_the_format_extension(
    filename: str | None, fmt: OutputFormat, expected: str
) -> None:
    assert download_name(filename, fmt) == expected
