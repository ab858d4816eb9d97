"""Column helpers shared by the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, Uuid, event, func, inspect
from sqlalchemy.orm import Mapped, mapped_column

from core.db import db


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


# Columns whose Python-side default is applied when an object is built, not at its flush.
EARLY_DEFAULTS = ("id", "created_at", "updated_at")


@event.listens_for(db.Model, "init", propagate=True)
def _apply_early_defaults(target: object, args: tuple, kwargs: dict) -> None:
    """Give a new object its id and timestamps as soon as it is built.

    Services can then link new objects and write them all in the one flush of their
    commit, instead of flushing after each add to learn an id (a round trip and a
    unit-of-work pass each).
    """
    columns = inspect(type(target)).columns
    for name in EARLY_DEFAULTS:
        column = columns.get(name)
        if name in kwargs or column is None or column.default is None:
            continue
        if column.default.is_callable:
            kwargs[name] = column.default.arg(None)
