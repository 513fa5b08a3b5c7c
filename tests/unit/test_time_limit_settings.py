"""worker.time_limits and dead_letters settings: defaults, partial groups, and the rules they must keep."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pagemill.settings import Settings, WorkerSettings
from pagemill.settings.time_limits import TimeLimit, TimeLimitSettings, WorkKind


def test_defaults_per_kind_soft_below_hard() -> None:
    limits = TimeLimitSettings()
    hard = {kind: limits.of(kind).hard_s for kind in WorkKind}
    assert hard == {
        WorkKind.IMAGE_PAGE: 300.0,
        WorkKind.DOCUMENT_PAGE: 180.0,
        WorkKind.TEXT_CHUNK: 60.0,
        WorkKind.AUDIO_CHUNK: 120.0,
    }
    assert all(limits.of(kind).soft_s < limits.of(kind).hard_s for kind in WorkKind)
    assert WorkerSettings().task_soft_time_limit_s > limits.longest_hard_s()


@pytest.mark.usefixtures("clean_env")
def test_one_field_from_the_environment_keeps_the_other_default_of_its_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAGEMILL_WORKER__TIME_LIMITS__DOCUMENT_PAGE__SOFT_S", "0.2")
    monkeypatch.setenv("PAGEMILL_WORKER__TIME_LIMITS__IMAGE_PAGE__HARD_S", "400")
    limits = Settings().worker.time_limits
    assert (limits.document_page.soft_s, limits.document_page.hard_s) == (0.2, 180.0)
    assert (limits.image_page.soft_s, limits.image_page.hard_s) == (270.0, 400.0)
    assert limits.text_chunk.hard_s == 60.0


def test_soft_must_be_below_hard() -> None:
    with pytest.raises(ValidationError, match="soft_s"):
        TimeLimit(soft_s=60, hard_s=60)
    with pytest.raises(ValidationError, match="must be below hard_s"):
        TimeLimitSettings.model_validate({"text_chunk": {"soft_s": 90}})


def test_celerys_task_limits_stay_above_every_page_limit() -> None:
    with pytest.raises(ValidationError, match="task_soft_time_limit_s"):
        WorkerSettings(task_soft_time_limit_s=200, task_time_limit_s=400)  # image pages may take 300 s
    with pytest.raises(ValidationError, match="task_time_limit_s"):
        WorkerSettings(task_soft_time_limit_s=1500, task_time_limit_s=1500)
    raised = WorkerSettings.model_validate(
        {
            "time_limits": {"image_page": {"soft_s": 1000, "hard_s": 1200}},
            "task_soft_time_limit_s": 1300,
            "task_time_limit_s": 1400,
        }
    )
    assert raised.time_limits.image_page.hard_s == 1200


@pytest.mark.usefixtures("clean_env")
def test_the_bulk_replay_rate_limit_must_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().dead_letters.bulk_replay_rate_limit == "6/minute"
    monkeypatch.setenv("PAGEMILL_DEAD_LETTERS__BULK_REPLAY_RATE_LIMIT", "six a minute")
    with pytest.raises(ValidationError, match="limits notation"):
        Settings()
