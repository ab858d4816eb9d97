from __future__ import annotations

from api.extensions import db
from api.models import Message


def add(message: Message) -> Message:
    db.session.add(message)
    db.session.flush()
    return message
