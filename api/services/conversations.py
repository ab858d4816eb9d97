"""Conversations and their messages, always scoped to their owner."""

from __future__ import annotations

import uuid

from api.services import caps
from core.db import db
from core.errors import Conflict, NotFound
from core.models import Conversation, Message, User
from core.repositories import conversations as conversations_repo
from core.repositories import messages as messages_repo
from core.repositories.pagination import Page

DEFAULT_TITLE = "New conversation"


def create(user: User, title: str | None = None) -> Conversation:
    check_room(user)
    conversation = Conversation(user_id=user.id, title=(title or "").strip() or DEFAULT_TITLE)
    conversations_repo.add(conversation)
    db.session.commit()
    return conversation


def check_room(user: User) -> None:
    """409 when the user already stores as many conversations as their role may.

    The caller inserts the new conversation in this transaction: the user's row stays
    locked until it commits, so concurrent creations are counted one after the other.
    """
    cap = caps.limit(user, "CONVERSATIONS")
    if not cap:
        return
    caps.lock_account(user.id)
    stored = conversations_repo.count_for_user(user.id)
    if stored >= cap:
        raise Conflict(
            f"You have {stored} conversations (the limit is {cap}); delete one you no "
            "longer need (DELETE /api/conversations/<id>) or continue one by sending its "
            "conversation_id.",
            code="too_many_conversations",
            details={"conversations": stored, "limit": cap},
        )


def list_page(user_id: uuid.UUID, page: int, page_size: int) -> Page:
    return conversations_repo.list_page_for_user(user_id, page, page_size)


def get(user_id: uuid.UUID, conversation_id: uuid.UUID, *, with_messages: bool = False):
    """The user's conversation; 404 whether it does not exist or belongs to someone else."""
    conversation = conversations_repo.get_for_user(
        user_id, conversation_id, with_messages=with_messages
    )
    if conversation is None:
        raise NotFound("Conversation not found.")
    return conversation


def rename(user_id: uuid.UUID, conversation_id: uuid.UUID, title: str) -> Conversation:
    conversation = get(user_id, conversation_id)
    conversation.title = title.strip() or DEFAULT_TITLE
    db.session.commit()
    return conversation


def delete(user_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
    conversations_repo.delete(get(user_id, conversation_id))
    db.session.commit()


def append_message(
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    role: str,
    content: str,
    model: str | None = None,
    tier: str | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> Message:
    """Add a message to the user's conversation (used by the job pipeline)."""
    conversation = get(user_id, conversation_id)
    message = messages_repo.add(
        Message(
            conversation_id=conversation.id,
            role=role,
            content=content,
            model=model,
            tier=tier,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
    )
    conversation.updated_at = message.created_at
    db.session.commit()
    return message


def context(conversation_id: uuid.UUID, budget_chars: int) -> list[dict[str, str]]:
    """The newest user/assistant turns that fit in `budget_chars`, oldest first."""
    turns: list[dict[str, str]] = []
    used = 0
    for message in conversations_repo.recent_messages(conversation_id, limit=500):
        if message.role not in ("user", "assistant"):
            continue
        used += len(message.content)
        if used > budget_chars:
            break
        turns.append({"role": message.role, "content": message.content})
    turns.reverse()
    return turns


def title_from(message: str, max_length: int = 60) -> str:
    first_line = " ".join(message.split())
    if len(first_line) <= max_length:
        return first_line or DEFAULT_TITLE
    return first_line[: max_length - 1].rstrip() + "…"
