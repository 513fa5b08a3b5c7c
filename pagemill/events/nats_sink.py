"""Publishing events to NATS (events.nats_url). Being written: see the NATS brief."""

from __future__ import annotations

from collections.abc import Sequence

from pagemill.models import Event
from pagemill.settings import Settings


def publish(events: Sequence[Event], settings: Settings) -> None:
    """Publish ``events`` (CloudEvents JSON) to NATS and wait for the server to have them; raises on
    failure (the relay keeps them and tries again)."""
    raise NotImplementedError
