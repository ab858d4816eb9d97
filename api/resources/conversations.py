from __future__ import annotations

import uuid

import marshmallow as ma

from api.resources.blueprint import Blueprint
from api.resources.jobs import TOO_MANY_CONVERSATIONS
from api.schemas.common import PaginationQuerySchema
from api.schemas.conversations import (
    ConversationCreateSchema,
    ConversationDetailSchema,
    ConversationPageSchema,
    ConversationSchema,
    ConversationUpdateSchema,
)
from api.security import auth_required, current_identity
from api.services import conversations

blp = Blueprint(
    "conversations", __name__, url_prefix="/api/conversations", description="Conversations"
)


@blp.route("/", methods=["POST"])
@auth_required
@blp.arguments(ConversationCreateSchema)
@blp.response(201, ConversationSchema)
@blp.alt_response(409, description=TOO_MANY_CONVERSATIONS)
def create_conversation(payload):
    """Start a conversation"""
    return conversations.create(current_identity().user, payload.get("title"))


@blp.route("/", methods=["GET"])
@auth_required
@blp.arguments(PaginationQuerySchema, location="query", unknown=ma.RAISE)
@blp.response(200, ConversationPageSchema)
def list_conversations(query):
    """Your conversations, most recently active first"""
    return conversations.list_page(current_identity().user_id, query["page"], query["page_size"])


@blp.route("/<uuid:conversation_id>", methods=["GET"])
@auth_required
@blp.response(200, ConversationDetailSchema)
def get_conversation(conversation_id: uuid.UUID):
    """One of your conversations, with its messages oldest first"""
    return conversations.get(current_identity().user_id, conversation_id, with_messages=True)


@blp.route("/<uuid:conversation_id>", methods=["PATCH"])
@auth_required
@blp.arguments(ConversationUpdateSchema)
@blp.response(200, ConversationSchema)
def rename_conversation(payload, conversation_id: uuid.UUID):
    """Rename a conversation"""
    return conversations.rename(current_identity().user_id, conversation_id, payload["title"])


@blp.route("/<uuid:conversation_id>", methods=["DELETE"])
@auth_required
@blp.response(204)
def delete_conversation(conversation_id: uuid.UUID):
    """Delete a conversation and its messages"""
    conversations.delete(current_identity().user_id, conversation_id)
