from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from core.db import db
from core.models import Conversation, Message
from core.repositories.pagination import Page, paginate


def add(conversation: Conversation) -> Conversation:
    # Written at the commit's flush with everything else: its id is known already.
    db.session.add(conversation)
    return conversation


def get_for_user(
    user_id: uuid.UUID, conversation_id: uuid.UUID, *, with_messages: bool = False
) -> Conversation | None:
    # Scoped to the owner in SQL: another user's id is simply not found.
    query = select(Conversation).where(
        Conversation.id == conversation_id, Conversation.user_id == user_id
    )
    if with_messages:
        query = query.options(selectinload(Conversation.messages))
    return db.session.scalar(query)


def count_for_user(user_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(Conversation).where(Conversation.user_id == user_id)
    return db.session.scalar(query)


def list_page_for_user(user_id: uuid.UUID, page: int, page_size: int) -> Page:
    query = (
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(Conversation.updated_at.desc(), Conversation.created_at.desc())
    )
    return paginate(query, page, page_size)


def delete(conversation: Conversation) -> None:
    db.session.delete(conversation)


def recent_messages(conversation_id: uuid.UUID, limit: int) -> list[Message]:
    """The conversation's newest messages, newest first."""
    query = (
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.created_at.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))
