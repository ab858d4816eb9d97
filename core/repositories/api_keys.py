from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update

from core.db import db
from core.models import ApiKey


def add(key: ApiKey) -> ApiKey:
    db.session.add(key)
    db.session.flush()
    return key


def get_active_by_hash(key_hash: str) -> ApiKey | None:
    return db.session.scalar(
        select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )


def get_active_for_user(user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    return db.session.scalar(
        select(ApiKey).where(
            ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)
        )
    )


def list_active_for_user(user_id: uuid.UUID) -> list[ApiKey]:
    query = (
        select(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc())
    )
    return list(db.session.scalars(query))


def count_active_for_user(user_id: uuid.UUID) -> int:
    query = select(func.count()).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    return db.session.scalar(query) or 0


def touch_last_used(key_id: uuid.UUID, when: datetime) -> None:
    db.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when))
