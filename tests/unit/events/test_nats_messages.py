"""What the NATS sink sends (no server here): subjects, the dedupe header, the CloudEvents body; and the
NATS URL masked in `pagemill config show`."""

from __future__ import annotations

import json
import uuid

import pytest

from pagemill.events.nats_sink import MSG_ID_HEADER, messages_for, subject_for
from pagemill.events.types import envelope
from pagemill.models import Event
from pagemill.models.base import utcnow
from pagemill.settings import Settings
from pagemill.settings.events import EventSettings, masked_nats_url


def event(type_: str, *, job: bool = True) -> Event:
    return Event(
        id=7,
        event_id=str(uuid.uuid4()),
        tenant_id="acme",
        job_id=str(uuid.uuid4()) if job else None,
        batch_id=None if job else str(uuid.uuid4()),
        seq=3 if job else None,
        type=type_,
        time=utcnow(),
        data={"state": "running"},
    )


@pytest.mark.parametrize(
    ("type_", "subject"),
    [
        ("job.succeeded", "pagemill.job.succeeded"),
        ("job.page_completed", "pagemill.job.page_completed"),
        ("batch.completed", "pagemill.batch.completed"),
    ],
)
def test_the_subject_is_the_prefix_and_the_type(type_: str, subject: str) -> None:
    assert subject_for(type_, "pagemill") == subject


@pytest.mark.usefixtures("clean_env")
def test_each_event_is_one_message_with_its_id_and_its_cloudevents_json() -> None:
    events = [event("job.started"), event("batch.completed", job=False)]
    sink = EventSettings(nats_url="nats://127.0.0.1:4222", nats_subject_prefix="acme.ocr")
    settings = Settings(events=sink)
    messages = messages_for(events, settings)
    assert [m.subject for m in messages] == ["acme.ocr.job.started", "acme.ocr.batch.completed"]
    for sent, message in zip(events, messages, strict=True):
        assert message.headers == {MSG_ID_HEADER: sent.event_id} and MSG_ID_HEADER == "Nats-Msg-Id"
        assert json.loads(message.body) == envelope(sent)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://user:secret@nats.internal:4222", "nats://***@nats.internal:4222"),
        ("tls://s3cr3t-token@a:4222, nats://b:4222", "tls://***@a:4222,nats://b:4222"),
    ],
)
def test_credentials_in_the_nats_url_are_masked(url: str, shown: str) -> None:
    assert masked_nats_url(url) == shown
