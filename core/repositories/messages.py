from __future__ import annotations

from core.db import db
from core.models import Message


def add(message: Message) -> Message:
    # Written at the commit's flush with everything else: its id is known already.
    db.session.add(message)
    return message
