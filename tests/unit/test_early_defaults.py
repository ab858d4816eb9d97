"""New objects know their id and timestamps when built, so one flush can write them all."""

from __future__ import annotations

import uuid

from core.models import Conversation, Job, Message


def test_a_new_object_has_its_id_and_creation_time_before_any_flush():
    conversation = Conversation(user_id=uuid.uuid4(), title="t")
    message = Message(conversation_id=conversation.id, role="user", content="hi")

    assert isinstance(conversation.id, uuid.UUID) and isinstance(message.id, uuid.UUID)
    assert conversation.id != message.id
    assert conversation.created_at is not None and conversation.updated_at is not None
    assert message.created_at >= conversation.created_at


def test_values_given_to_the_constructor_are_kept():
    given = uuid.UUID(int=7)
    job = Job(id=given, status="queued", attempts=0)

    assert job.id == given
    # Only id and timestamps are set early; other defaults stay with the flush.
    assert job.cached is None
