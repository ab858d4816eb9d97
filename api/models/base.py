"""Column helpers shared by the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def elapsed_ms(start: datetime | None, end: datetime | None) -> float | None:
    """Milliseconds from start to end, or None when either is unknown."""
    return round((end - start).total_seconds() * 1000, 1) if start and end else None


def uuid_pk() -> Mapped[uuid.UUID]:
    # Random ids: public ids reveal neither counts nor neighbours.
    return mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


def created_at_column() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )


def updated_at_column() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True),
        nullable=False,
        default=utcnow,
        onupdate=utcnow,
        server_default=func.now(),
    )
