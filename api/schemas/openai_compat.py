"""Request and response shapes of the OpenAI-compatible API (a subset of OpenAI's)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import (
    StrictBoolean,
    StrictFloat,
    StrictInteger,
    StrictSchema,
    max_tokens_fits,
    message_fits,
)

F = ma.fields
ROLES = ("system", "user", "assistant")


class TextPartSchema(StrictSchema):
    type = F.String(required=True, validate=validate.Equal("text"))
    text = F.String(required=True)


class ContentField(F.Field):
    """A message's content: a string, or a list of text parts (joined)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            parts = TextPartSchema(many=True).load(value)
            return "".join(part["text"] for part in parts)
        raise ma.ValidationError("Must be a string or a list of text parts.")


# ContentField is a custom field: without this its spec would say "any value".
CONTENT_SPEC = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["text"]},
                    "text": {"type": "string"},
                },
                "required": ["type", "text"],
                "additionalProperties": False,
            },
        },
    ]
}


class ChatMessageSchema(StrictSchema):
    role = F.String(required=True, validate=validate.OneOf(ROLES))
    content = ContentField(required=True, validate=message_fits, metadata=CONTENT_SPEC)
    name = F.String(validate=validate.Length(max=64))


class StreamOptionsSchema(StrictSchema):
    include_usage = StrictBoolean(load_default=False)


class ChatCompletionRequestSchema(StrictSchema):
    model = F.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "auto, light, heavy, or a configured model name",
            "example": "auto",
        },
    )
    messages = F.List(
        F.Nested(ChatMessageSchema),
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata={
            "description": "An optional first system message, then turns ending with the user's",
            "example": [{"role": "user", "content": "What is a Redis Stream?"}],
        },
    )
    stream = StrictBoolean(load_default=False)
    stream_options = F.Nested(StreamOptionsSchema, allow_none=True)
    max_tokens = StrictInteger(allow_none=True, validate=[validate.Range(min=1), max_tokens_fits])
    max_completion_tokens = StrictInteger(
        allow_none=True, validate=[validate.Range(min=1), max_tokens_fits]
    )
    temperature = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=2))
    n = StrictInteger(
        allow_none=True,
        validate=validate.Equal(1, error="Only n=1 is supported."),
    )
    user = F.String(allow_none=True, validate=validate.Length(max=256))

    @ma.validates_schema
    def _ends_with_the_user(self, data, **kwargs):
        messages = data.get("messages") or []
        if messages and messages[-1]["role"] != "user":
            raise ma.ValidationError("The last message must be the user's.", "messages")
        if any(m["role"] == "system" for m in messages[1:]):
            raise ma.ValidationError("Only the first message may be a system message.", "messages")
        if messages and not messages[-1]["content"].strip():
            raise ma.ValidationError("The last message must not be blank.", "messages")


class UsageSchema(ma.Schema):
    prompt_tokens = F.Integer()
    completion_tokens = F.Integer()
    total_tokens = F.Integer()


class AssistantMessageSchema(ma.Schema):
    role = F.String()
    content = F.String()


class ChoiceSchema(ma.Schema):
    index = F.Integer()
    message = F.Nested(AssistantMessageSchema)
    finish_reason = F.String(allow_none=True)


class ChatCompletionSchema(ma.Schema):
    id = F.String()
    object = F.String()
    created = F.Integer()
    model = F.String()
    choices = F.List(F.Nested(ChoiceSchema))
    usage = F.Nested(UsageSchema)


class ModelSchema(ma.Schema):
    id = F.String()
    object = F.String()
    created = F.Integer()
    owned_by = F.String()


class ModelListSchema(ma.Schema):
    object = F.String()
    data = F.List(F.Nested(ModelSchema))


class ChatCompletionChunkEventSchema(ma.Schema):
    """One Server-Sent Event of a streamed completion, as OpenAI sends them."""

    event = F.String(required=True, metadata={"enum": ["message"]})
    data = F.String(
        required=True,
        metadata={"description": "A chat.completion.chunk or an error as JSON, then [DONE]"},
    )
    id = F.String()
    retry = F.Integer()


class OpenAIErrorBodySchema(ma.Schema):
    message = F.String(required=True)
    type = F.String(required=True)
    param = F.String(required=True, allow_none=True)
    code = F.String(required=True)


class OpenAIErrorSchema(ma.Schema):
    """The error shape under /v1, OpenAI's, so its client libraries understand it."""

    error = F.Nested(OpenAIErrorBodySchema, required=True)
