"""When a batch ends: shared by the batch service and by every job that finishes."""

from __future__ import annotations

import uuid

from core.db import db
from core.models.base import utcnow
from core.repositories import batches as batches_repo


def settle(batch_id: uuid.UUID) -> None:
    """End the batch once none of its requests is queued or running (idempotent)."""
    batch = batches_repo.lock(batch_id)
    if batch is None or batch.is_ended or batches_repo.in_flight(batch_id):
        db.session.rollback()
        return
    now = utcnow()
    if batch.status == "cancelling":
        batch.status, batch.cancelled_at = "cancelled", now
    else:
        batch.status, batch.completed_at = "completed", now
    db.session.commit()
