from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import db
from core.models.base import created_at_column, uuid_pk

# validating and finalizing are OpenAI's; here validation happens before a batch is stored
# and results are read live, so a stored batch is never seen in either.
BATCH_STATUSES = (
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "cancelling",
    "cancelled",
    "failed",
)
ENDED_BATCH_STATUSES = ("completed", "cancelled", "failed")


class Batch(db.Model):
    """Many prompts submitted at once; each is a job (jobs.batch_id) at a lower priority."""

    __tablename__ = "batches"
    __table_args__ = (
        CheckConstraint(
            "status IN ('validating', 'in_progress', 'finalizing', 'completed', "
            "'cancelling', 'cancelled', 'failed')",
            name="ck_batches_status",
        ),
        Index("ix_batches_user_created", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    # "json" (the gateway's request list) or "jsonl" (OpenAI's batch line format).
    input_format: Mapped[str] = mapped_column(String(8), nullable=False)
    total: Mapped[int] = mapped_column(Integer, nullable=False)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    created_at: Mapped[datetime] = created_at_column()
    in_progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelling_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def is_ended(self) -> bool:
        return self.status in ENDED_BATCH_STATUSES
