"""Request shapes of OpenAI's Responses API (/v1/responses), as far as the gateway serves it.

A request is checked here for its own shape; its conversation is then rebuilt as chat
messages and checked by the chat-completions schema (api/services/responses.py), so one
set of rules covers both APIs. Fields OpenAI defines that change nothing here are
accepted and ignored; those no deployment can honour are refused naming the field.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import StrictBoolean, StrictFloat, StrictInteger, StrictSchema
from api.schemas.openai_compat import FUNCTION_NAME, MAX_TOOLS, MAX_TOP_LOGPROBS, FunctionSchema

F = ma.fields
INPUT_ROLES = ("user", "system", "developer", "assistant")
LOGPROBS_INCLUDE = "message.output_text.logprobs"


class InputTextSchema(StrictSchema):
    type = F.String(required=True, validate=validate.OneOf(("input_text", "output_text")))
    text = F.String(required=True)
    annotations = F.List(F.Raw())
    logprobs = F.List(F.Raw())


class InputImageSchema(StrictSchema):
    type = F.String(required=True, validate=validate.Equal("input_image"))
    image_url = F.String(required=True, validate=validate.Length(min=1))
    detail = F.String(validate=validate.OneOf(("auto", "low", "high")))
    file_id = F.String(allow_none=True)


_PARTS = {"input_text": InputTextSchema, "output_text": InputTextSchema}
_PARTS["input_image"] = InputImageSchema
_UNSUPPORTED_PARTS = {
    "input_file": "File inputs are not supported: put the file's text in an input_text part.",
    "input_audio": "Audio input is not supported.",
    "refusal": None,  # an earlier assistant refusal: kept as no text
}


class ItemContentField(F.Field):
    """A message item's content: a string, or input_text / input_image / output_text parts,
    loaded as the chat API's content (a string, or text and image_url parts)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ma.ValidationError("Must be a string or a list of content parts.")
        parts, errors = [], {}
        for index, part in enumerate(value):
            kind = part.get("type") if isinstance(part, dict) else None
            kind = kind if isinstance(kind, str) else None
            if kind in _UNSUPPORTED_PARTS:
                if _UNSUPPORTED_PARTS[kind]:
                    errors[index] = [_UNSUPPORTED_PARTS[kind]]
                continue
            if kind not in _PARTS:
                errors[index] = ["Must be an input_text, input_image or output_text part."]
                continue
            try:
                parts.append(_PARTS[kind]().load(part))
            except ma.ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ma.ValidationError(errors)
        if all(part["type"] != "input_image" for part in parts):
            return "".join(part["text"] for part in parts)
        return [
            {"type": "image_url", "image_url": {"url": part["image_url"]}}
            if part["type"] == "input_image"
            else {"type": "text", "text": part["text"]}
            for part in parts
        ]


class MessageItemSchema(StrictSchema):
    type = F.String(validate=validate.Equal("message"))
    id = F.String()
    status = F.String()
    role = F.String(required=True, validate=validate.OneOf(INPUT_ROLES))
    content = ItemContentField(required=True, metadata={"oneOf": [{"type": "string"}]})


class FunctionCallItemSchema(StrictSchema):
    type = F.String(required=True, validate=validate.Equal("function_call"))
    id = F.String()
    status = F.String()
    call_id = F.String(required=True, validate=validate.Length(min=1, max=200))
    name = F.String(required=True, validate=validate.Regexp(FUNCTION_NAME))
    arguments = F.String(required=True)


class FunctionCallOutputItemSchema(StrictSchema):
    type = F.String(required=True, validate=validate.Equal("function_call_output"))
    id = F.String(allow_none=True)
    status = F.String(allow_none=True)
    call_id = F.String(required=True, validate=validate.Length(min=1, max=200))
    output = ItemContentField(required=True, metadata={"oneOf": [{"type": "string"}]})


_ITEMS = {
    "message": MessageItemSchema,
    "function_call": FunctionCallItemSchema,
    "function_call_output": FunctionCallOutputItemSchema,
}


class InputField(F.Field):
    """A string (one user message) or a list of message / function_call /
    function_call_output items."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if not value.strip():
                raise ma.ValidationError("Must not be blank.")
            return [{"type": "message", "role": "user", "content": value}]
        if not isinstance(value, list) or not value:
            raise ma.ValidationError("Must be a string or a non-empty list of input items.")
        if len(value) > 500:
            raise ma.ValidationError("At most 500 input items.")
        items, errors = [], {}
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                errors[index] = ["Must be an object."]
                continue
            kind = item.get("type", "message")
            if not isinstance(kind, str):
                errors[index] = {"type": ["Not a valid string."]}
                continue
            if kind not in _ITEMS:
                errors[index] = {
                    "type": [
                        f"{kind!r} items are not supported: message, function_call and "
                        "function_call_output are."
                    ]
                }
                continue
            try:
                loaded = _ITEMS[kind]().load(item)
            except ma.ValidationError as exc:
                errors[index] = exc.messages
                continue
            items.append({**loaded, "type": kind})
        if errors:
            raise ma.ValidationError(errors)
        return items


class FunctionToolSchema(FunctionSchema):
    """A function tool as the Responses API writes it: flat, type and function together."""

    type = F.String(required=True, validate=validate.Equal("function"))


# OpenAI's built-in web search: served by the gateway's own search tool, where the
# operator enabled it for the model (OPENAI_WEB_SEARCH_MODELS); its options are ignored.
WEB_SEARCH_TOOLS = ("web_search", "web_search_preview")


class ToolField(F.Field):
    """A function tool, or OpenAI's built-in web search tool."""

    def _deserialize(self, value, attr, data, **kwargs):
        kind = value.get("type") if isinstance(value, dict) else None
        if isinstance(kind, str) and kind in WEB_SEARCH_TOOLS:
            return {"type": kind}
        if kind != "function":
            raise ma.ValidationError(
                {"type": ["Only function tools and web_search are supported."]}
            )
        return FunctionToolSchema().load(value)


class ToolChoiceField(F.Field):
    """none, auto, required, or {"type": "function", "name": …}."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value in ("none", "auto", "required"):
            return value
        if (
            isinstance(value, dict)
            and value.get("type") == "function"
            and isinstance(value.get("name"), str)
            and set(value) == {"type", "name"}
        ):
            return value
        raise ma.ValidationError("Must be none, auto, required or {type: function, name}.")


class TextFormatSchema(StrictSchema):
    type = F.String(required=True, validate=validate.OneOf(("text", "json_object", "json_schema")))
    name = F.String(validate=validate.Regexp(FUNCTION_NAME))
    description = F.String()
    schema = F.Dict()
    strict = StrictBoolean(allow_none=True)

    @ma.validates_schema
    def _named_schema(self, data, **kwargs):
        if data["type"] == "json_schema" and not data.get("name"):
            raise ma.ValidationError("Missing data for required field.", "name")


class TextSchema(StrictSchema):
    format = F.Nested(TextFormatSchema)
    verbosity = F.String(allow_none=True)  # GPT-5's length hint: ignored


class ResponseCreateSchema(StrictSchema):
    model = F.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "auto, light, heavy, or a configured model name"},
    )
    input = InputField(
        required=True,
        metadata={
            "description": "A string, or message / function_call / function_call_output items",
            "example": "What is a Redis Stream?",
        },
    )
    instructions = F.String(allow_none=True)
    previous_response_id = F.String(allow_none=True)
    background = StrictBoolean(load_default=False)
    stream = StrictBoolean(load_default=False)
    stream_options = F.Dict(allow_none=True)
    max_output_tokens = StrictInteger(allow_none=True, validate=validate.Range(min=1))
    temperature = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=2))
    top_p = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    top_logprobs = StrictInteger(
        allow_none=True, validate=validate.Range(min=0, max=MAX_TOP_LOGPROBS)
    )
    tools = F.List(
        ToolField(metadata={"type": "object"}),
        allow_none=True,
        validate=validate.Length(max=MAX_TOOLS),
    )
    tool_choice = ToolChoiceField(allow_none=True, metadata={"oneOf": [{"type": "string"}]})
    parallel_tool_calls = StrictBoolean(allow_none=True)
    text = F.Nested(TextSchema, allow_none=True)
    include = F.List(F.String(), allow_none=True)
    user = F.String(allow_none=True, validate=validate.Length(max=256))
    metadata = F.Dict(keys=F.String(validate=validate.Length(max=64)), allow_none=True)
    # Accepted and ignored: they change nothing about the answer here.
    store = StrictBoolean(allow_none=True)
    truncation = F.String(allow_none=True, validate=validate.OneOf(("auto", "disabled")))
    service_tier = F.String(allow_none=True)
    prompt_cache_key = F.String(allow_none=True)
    safety_identifier = F.String(allow_none=True)
    reasoning = F.Dict(allow_none=True)
    max_tool_calls = StrictInteger(allow_none=True, validate=validate.Range(min=1))
    # Defined by OpenAI, refused: no deployment of the gateway has them.
    conversation = F.Raw(allow_none=True)
    prompt = F.Dict(allow_none=True)

    @ma.validates_schema
    def _refuse_the_unsupported(self, data, **kwargs):
        if data.get("conversation") is not None:
            raise ma.ValidationError(
                "OpenAI's Conversations API is not served here: chain responses with "
                "previous_response_id.",
                "conversation",
            )
        if data.get("prompt") is not None:
            raise ma.ValidationError("Stored prompts are not served here.", "prompt")


class ResponseQuerySchema(StrictSchema):
    stream = F.Boolean(load_default=False)  # a query string: "true" / "false"
    starting_after = F.Integer(
        load_default=None,
        validate=validate.Range(min=-1),
        metadata={"description": "Resume the stream after this sequence_number"},
    )
    include = F.List(F.String())
    include_obfuscation = F.Boolean()


class ResponseObjectSchema(ma.Schema):
    """OpenAI's response object (documented loosely: its items vary by type)."""

    id = F.String()
    object = F.String()
    created_at = F.Integer()
    status = F.String()
    background = F.Boolean()
    error = F.Dict(allow_none=True)
    incomplete_details = F.Dict(allow_none=True)
    instructions = F.String(allow_none=True)
    max_output_tokens = F.Integer(allow_none=True)
    model = F.String()
    output = F.List(F.Dict())
    parallel_tool_calls = F.Boolean()
    previous_response_id = F.String(allow_none=True)
    temperature = F.Float(allow_none=True)
    top_p = F.Float(allow_none=True)
    text = F.Dict()
    tool_choice = F.Raw()
    tools = F.List(F.Dict())
    truncation = F.String()
    usage = F.Dict(allow_none=True)
    user = F.String(allow_none=True)
    metadata = F.Dict()
    store = F.Boolean()
    reasoning = F.Dict()


class ResponseEventSchema(ma.Schema):
    """One Server-Sent Event of a streamed response, as OpenAI sends them."""

    event = F.String(required=True, metadata={"description": "The event's type"})
    data = F.String(
        required=True,
        metadata={"description": "The event as JSON, with its type and sequence_number"},
    )
