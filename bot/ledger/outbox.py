"""Writing pushes into the outbox, inside the caller's transaction (so a state change and the
notification it causes commit together or not at all). Delivery is a separate concern."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import Outbox


def enqueue(
    session: Session,
    key: str,
    text: str,
    now: datetime,
    person_id: int | None = None,
    channel: str = "",
    recipient: str = "",
    not_before: datetime | None = None,
) -> bool:
    """Add a push unless one with the same idempotency key exists; returns True when added."""
    if session.scalar(select(Outbox.id).where(Outbox.idempotency_key == key)) is not None:
        return False
    session.add(
        Outbox(
            idempotency_key=key,
            person_id=person_id,
            channel=channel,
            recipient=recipient,
            text=text,
            not_before=not_before or now,
            created_at=now,
        )
    )
    return True
