"""`pagemill config check` names settings that do not exist: in the TOML file (a failure) and in the
environment (a warning), with the closest real name."""

from __future__ import annotations

from pathlib import Path

from pagemill.cli.config_checks import environment_findings, file_findings, unknown_keys
from pagemill.settings import Settings


def test_unknown_keys_at_every_level_with_a_suggestion() -> None:
    data = {
        "data_dir": "/srv",
        "databse": {"url": "x"},
        "storage": {"backend": "s3", "s3_bukcet": "docs"},
        "engines": {"vllm": {"base_url": "http://v", "modle": "m"}, "fallback": ["rapidocr"]},
        "tiers": {"free": {"rate_limit": "5/minute"}},
    }
    assert unknown_keys(data, Settings) == [
        "unknown setting databse (did you mean database?)",
        "unknown setting storage.s3_bukcet (did you mean storage.s3_bucket?)",
        "unknown setting engines.vllm.modle (did you mean engines.vllm.model?)",
    ]


def test_variables_that_name_no_setting_are_warnings() -> None:
    environ = {
        "PAGEMILL_DATA_DIR": "/srv",
        "PAGEMILL_STORAGE__S3_BUCKET": "docs",
        "pagemill_ocr__dpi": "200",
        "PAGEMILL_ENGINES__VLLM__BASE_URL": "http://v",
        "PAGEMILL_STORAGE": '{"backend": "local"}',
        "PAGEMILL_API_KEY": "pm_live_x",
        "PAGEMILL_CONFIG_FILE": "p.toml",
        "PAGEMILL_STORAGE__BAKEND": "s3",
        "PAGEMILL_OCRR__DPI": "200",
        "HOME": "/root",
    }
    findings = environment_findings(environ)
    assert [f.line() for f in findings] == [
        "env        warning: PAGEMILL_OCRR__DPI is not a setting: ignored (did you mean PAGEMILL_OCR__DPI?)",
        "env        warning: PAGEMILL_STORAGE__BAKEND is not a setting: ignored "
        "(did you mean PAGEMILL_STORAGE__BACKEND?)",
    ]
    assert all(f.ok for f in findings), "warnings do not fail the check"


def test_the_file_itself(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[ocr]\ndpi = 200\n")
    assert [f.ok for f in file_findings(good)[0]] == [True]
    missing, loads = file_findings(tmp_path / "nope.toml")
    assert not loads and "no such file" in missing[0].detail
    broken = tmp_path / "broken.toml"
    broken.write_text("[ocr\n")
    found, loads = file_findings(broken)
    assert not loads and "not valid TOML" in found[0].line()
