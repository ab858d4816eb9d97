from __future__ import annotations

import marshmallow as ma

from api.schemas.common import StrictSchema, page_schema, trimmed_text


class ConversationCreateSchema(StrictSchema):
    title = trimmed_text(200, required=False)


class ConversationUpdateSchema(StrictSchema):
    title = trimmed_text(200)


class MessageSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    role = ma.fields.String(dump_only=True)
    content = ma.fields.String(dump_only=True)
    model = ma.fields.String(dump_only=True, allow_none=True)
    tier = ma.fields.String(dump_only=True, allow_none=True)
    prompt_tokens = ma.fields.Integer(dump_only=True, allow_none=True)
    completion_tokens = ma.fields.Integer(dump_only=True, allow_none=True)
    created_at = ma.fields.DateTime(dump_only=True)


class ConversationSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    title = ma.fields.String(dump_only=True)
    created_at = ma.fields.DateTime(dump_only=True)
    updated_at = ma.fields.DateTime(dump_only=True)


class ConversationDetailSchema(ConversationSchema):
    messages = ma.fields.List(ma.fields.Nested(MessageSchema), dump_only=True)


ConversationPageSchema = page_schema(ConversationSchema, "ConversationPage")
