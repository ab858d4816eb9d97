from __future__ import annotations

import uuid

from sqlalchemy import select

from core.db import db
from core.models import User
from core.repositories.pagination import Page, paginate


def get(user_id: uuid.UUID) -> User | None:
    return db.session.get(User, user_id)


def get_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email))


def add(user: User) -> User:
    db.session.add(user)
    db.session.flush()
    return user


def list_page(
    page: int,
    page_size: int,
    *,
    email_contains: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
) -> Page:
    query = select(User).order_by(User.created_at.desc(), User.id)
    if email_contains:
        query = query.where(User.email.contains(email_contains.lower(), autoescape=True))
    if role is not None:
        query = query.where(User.role == role)
    if is_active is not None:
        query = query.where(User.is_active.is_(is_active))
    return paginate(query, page, page_size)


def lock(user_id: uuid.UUID) -> None:
    """Hold the user's row until the transaction ends, against other lockers only.

    FOR NO KEY UPDATE, not FOR UPDATE: rows that merely reference the user (a job, a usage
    row written by a worker) take a key-share lock, which this one does not block.
    """
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
