"""Request and response shapes of the OpenAI-compatible API.

Under /v1 the contract is OpenAI's: every field OpenAI defines for chat completions is
known here — used, passed to the model server, accepted and ignored, or refused with a
400 naming it (`param`) — and a field OpenAI does not define is an error, as OpenAI's own
API answers. docs/openai-compatibility.md has the table; `IGNORED_FIELDS` and the
`_refuse_*` checks below are its code.
"""

from __future__ import annotations

import re

import jsonschema
import marshmallow as ma
from marshmallow import validate

from api.chat_messages import text_of
from api.schemas.common import (
    StrictBoolean,
    StrictFloat,
    StrictInteger,
    StrictSchema,
    max_tokens_fits,
    message_fits,
)
from config.settings import get_settings

F = ma.fields
# developer is OpenAI's newer name for system: it is stored and sent as system.
ROLES = ("system", "developer", "user", "assistant", "tool")
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 128
MAX_STOP_SEQUENCES = 4
MAX_TOP_LOGPROBS = 20

# Fields OpenAI defines that change nothing about the answer here: accepted, not used.
IGNORED_FIELDS = (
    "store",  # OpenAI's stored completions; the gateway keeps its own job record anyway
    "metadata",  # for OpenAI's dashboard; not shown anywhere here
    "service_tier",  # OpenAI's capacity classes
    "prompt_cache_key",  # OpenAI's prompt-cache routing hint
    "safety_identifier",  # OpenAI's abuse-detection id
    "reasoning_effort",  # o-series reasoning budget; local models do not take it
    "verbosity",  # GPT-5's length hint
    "prediction",  # predicted output: a latency optimisation, never changes the answer
)


class TextPartSchema(StrictSchema):
    type = F.String(required=True, validate=validate.Equal("text"))
    text = F.String(required=True)


class ImageUrlSchema(StrictSchema):
    url = F.String(required=True, validate=validate.Length(min=1))
    detail = F.String(validate=validate.OneOf(("auto", "low", "high")))


class ImagePartSchema(StrictSchema):
    type = F.String(required=True, validate=validate.Equal("image_url"))
    image_url = F.Nested(ImageUrlSchema, required=True)


class RefusalPartSchema(StrictSchema):
    type = F.String(required=True, validate=validate.Equal("refusal"))
    refusal = F.String(required=True)


PART_SCHEMAS = {"text": TextPartSchema, "image_url": ImagePartSchema, "refusal": RefusalPartSchema}
UNSUPPORTED_PARTS = {
    "input_audio": "Audio input is not supported: the gateway's models take text and images.",
    "file": "File parts are not supported: put the file's text in a text part.",
}


class ContentField(F.Field):
    """A message's content: a string, null, or a list of parts.

    Text-only parts are joined into one string (what every model server takes); parts
    with images stay a list of text and image_url parts.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ma.ValidationError("Must be a string, null or a list of content parts.")
        parts, errors = [], {}
        for index, part in enumerate(value):
            kind = part.get("type") if isinstance(part, dict) else None
            kind = kind if isinstance(kind, str) else None
            if kind in UNSUPPORTED_PARTS:
                errors[index] = [UNSUPPORTED_PARTS[kind]]
            elif kind not in PART_SCHEMAS:
                errors[index] = ["Must be a text or image_url part."]
            else:
                try:
                    parts.append(PART_SCHEMAS[kind]().load(part))
                except ma.ValidationError as exc:
                    errors[index] = exc.messages
        if errors:
            raise ma.ValidationError(errors)
        if all(part["type"] != "image_url" for part in parts):
            return "".join(part.get("text") or part.get("refusal") or "" for part in parts)
        return [
            {"type": "text", "text": part["text"]}
            if part["type"] == "text"
            else {"type": "image_url", "image_url": {"url": part["image_url"]["url"]}}
            for part in parts
            if part["type"] != "refusal"
        ]


_PART_SPEC = {
    "oneOf": [
        {
            "type": "object",
            "properties": {"type": {"enum": ["text"]}, "text": {"type": "string"}},
            "required": ["type", "text"],
        },
        {
            "type": "object",
            "properties": {
                "type": {"enum": ["image_url"]},
                "image_url": {
                    "type": "object",
                    "properties": {"url": {"type": "string"}, "detail": {"type": "string"}},
                    "required": ["url"],
                },
            },
            "required": ["type", "image_url"],
        },
    ]
}
# ContentField is a custom field: without this its spec would say "any value".
CONTENT_SPEC = {
    "oneOf": [{"type": "string"}, {"type": "array", "items": _PART_SPEC}],
    "nullable": True,
}


def _content_fits(content) -> None:
    message_fits(text_of(content))


class FunctionCallSchema(StrictSchema):
    name = F.String(required=True, validate=validate.Regexp(FUNCTION_NAME))
    arguments = F.String(required=True)


class ToolCallSchema(StrictSchema):
    id = F.String(required=True, validate=validate.Length(min=1, max=200))
    type = F.String(load_default="function", validate=validate.Equal("function"))
    function = F.Nested(FunctionCallSchema, required=True)


class ChatMessageSchema(StrictSchema):
    role = F.String(required=True, validate=validate.OneOf(ROLES))
    content = ContentField(load_default=None, validate=_content_fits, metadata=CONTENT_SPEC)
    name = F.String(validate=validate.Length(max=64))
    tool_calls = F.List(F.Nested(ToolCallSchema), validate=validate.Length(max=MAX_TOOLS))
    tool_call_id = F.String(validate=validate.Length(min=1, max=200))
    refusal = F.String(allow_none=True)
    audio = F.Dict(allow_none=True)
    function_call = F.Dict(allow_none=True)

    @ma.validates_schema
    def _fits_its_role(self, data, **kwargs):
        role = data["role"]
        if data.get("tool_calls") and role != "assistant":
            raise ma.ValidationError("Only an assistant message has tool_calls.", "tool_calls")
        if role == "tool" and not data.get("tool_call_id"):
            raise ma.ValidationError("A tool message needs the tool_call_id it answers.", "role")
        if role != "tool" and data.get("tool_call_id"):
            raise ma.ValidationError("Only a tool message has a tool_call_id.", "tool_call_id")
        if isinstance(data.get("content"), list) and role != "user":
            raise ma.ValidationError("Only a user message may have image parts.", "content")
        if data.get("audio") or data.get("function_call"):
            field = "audio" if data.get("audio") else "function_call"
            raise ma.ValidationError("Not supported: use content and tool_calls.", field)
        if role == "assistant":
            if data.get("content") is None and not data.get("tool_calls"):
                raise ma.ValidationError("An assistant message needs content or tool_calls.")
        elif data.get("content") is None:
            raise ma.ValidationError("Missing data for required field.", "content")

    @ma.post_load
    def _normalized(self, data, **kwargs):
        """The message as the job stores it and the worker sends it."""
        message = {
            "role": "system" if data["role"] == "developer" else data["role"],
            "content": data.get("content") or "",
        }
        if data.get("tool_calls"):
            message["tool_calls"] = [
                {"id": call["id"], "type": "function", "function": dict(call["function"])}
                for call in data["tool_calls"]
            ]
        if data.get("tool_call_id"):
            message["tool_call_id"] = data["tool_call_id"]
        if data.get("name") and data["role"] == "tool":
            message["name"] = data["name"]
        return message


class StreamOptionsSchema(StrictSchema):
    include_usage = StrictBoolean(load_default=False)
    # OpenAI pads chunks against side channels; nothing to pad here.
    include_obfuscation = StrictBoolean()


class FunctionSchema(StrictSchema):
    name = F.String(
        required=True,
        validate=validate.Regexp(FUNCTION_NAME, error="Must be 1-64 letters, digits, _ or -."),
    )
    description = F.String(validate=validate.Length(max=10_000))
    parameters = F.Dict(load_default=lambda: {"type": "object", "properties": {}})
    strict = StrictBoolean(allow_none=True)

    @ma.validates("parameters")
    def _a_json_schema(self, value, **kwargs):
        _check_json_schema(value)


class ToolSchema(StrictSchema):
    type = F.String(
        required=True,
        validate=validate.Equal("function", error="Only function tools are supported."),
    )
    function = F.Nested(FunctionSchema, required=True)


class ToolChoiceFunctionSchema(StrictSchema):
    name = F.String(required=True)


class ToolChoiceSchema(StrictSchema):
    type = F.String(required=True, validate=validate.Equal("function"))
    function = F.Nested(ToolChoiceFunctionSchema, required=True)


class ToolChoiceField(F.Field):
    """none, auto, required, or {"type": "function", "function": {"name": …}}."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if value not in ("none", "auto", "required"):
                raise ma.ValidationError("Must be none, auto, required or a named function.")
            return value
        if isinstance(value, dict):
            return {"type": "function", "function": ToolChoiceSchema().load(value)["function"]}
        raise ma.ValidationError("Must be none, auto, required or a named function.")


class JsonSchemaFormatSchema(StrictSchema):
    name = F.String(required=True, validate=validate.Regexp(FUNCTION_NAME))
    description = F.String()
    schema = F.Dict(load_default=dict)
    strict = StrictBoolean(allow_none=True)

    @ma.validates("schema")
    def _a_json_schema(self, value, **kwargs):
        _check_json_schema(value)


class ResponseFormatSchema(StrictSchema):
    type = F.String(required=True, validate=validate.OneOf(("text", "json_object", "json_schema")))
    json_schema = F.Nested(JsonSchemaFormatSchema)

    @ma.validates_schema
    def _schema_when_asked(self, data, **kwargs):
        if data["type"] == "json_schema" and "json_schema" not in data:
            raise ma.ValidationError("Missing data for required field.", "json_schema")
        if data["type"] != "json_schema" and "json_schema" in data:
            raise ma.ValidationError("Only with type json_schema.", "json_schema")


def _check_json_schema(value) -> None:
    try:
        jsonschema.validators.validator_for(value).check_schema(value)
    except jsonschema.SchemaError as exc:
        raise ma.ValidationError(f"Not a valid JSON schema: {exc.message}") from None


class StopField(F.Field):
    """A stop sequence or a list of up to four; always loaded as a list."""

    def _deserialize(self, value, attr, data, **kwargs):
        stops = [value] if isinstance(value, str) else value
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise ma.ValidationError("Must be a non-empty string or a list of them.")
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ma.ValidationError(f"At most {MAX_STOP_SEQUENCES} stop sequences.")
        return stops


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
            "description": "system/developer, user, assistant (with tool_calls) and tool "
            "messages, ending with a user or tool message",
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
    top_p = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    stop = StopField(allow_none=True, metadata={"oneOf": [{"type": "string"}, {"type": "array"}]})
    seed = StrictInteger(allow_none=True)
    presence_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    frequency_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    logprobs = StrictBoolean(allow_none=True)
    top_logprobs = StrictInteger(
        allow_none=True, validate=validate.Range(min=0, max=MAX_TOP_LOGPROBS)
    )
    logit_bias = F.Dict(keys=F.String(), values=StrictFloat(), allow_none=True)
    n = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=128))
    response_format = F.Nested(ResponseFormatSchema, allow_none=True)
    tools = F.List(F.Nested(ToolSchema), allow_none=True, validate=validate.Length(max=MAX_TOOLS))
    tool_choice = ToolChoiceField(
        allow_none=True, metadata={"oneOf": [{"type": "string"}, {"type": "object"}]}
    )
    parallel_tool_calls = StrictBoolean(allow_none=True)
    user = F.String(allow_none=True, validate=validate.Length(max=256))
    modalities = F.List(F.String(), allow_none=True)
    # Defined by OpenAI, refused here with a 400 naming them (see _refuse_the_unsupported).
    audio = F.Dict(allow_none=True)
    web_search_options = F.Dict(allow_none=True)
    functions = F.List(F.Dict(), allow_none=True)
    function_call = F.Raw(allow_none=True)
    # Accepted and ignored (see IGNORED_FIELDS).
    store = StrictBoolean(allow_none=True)
    metadata = F.Dict(keys=F.String(validate=validate.Length(max=64)), allow_none=True)
    service_tier = F.String(allow_none=True)
    prompt_cache_key = F.String(allow_none=True)
    safety_identifier = F.String(allow_none=True)
    reasoning_effort = F.String(allow_none=True)
    verbosity = F.String(allow_none=True)
    prediction = F.Dict(allow_none=True)

    @ma.validates_schema
    def _a_conversation(self, data, **kwargs):
        messages = data.get("messages") or []
        if not messages:
            return
        last = messages[-1]
        if last["role"] not in ("user", "tool"):
            raise ma.ValidationError(
                "The last message must be the user's or a tool result.", "messages"
            )
        if last["role"] == "user" and not (
            text_of(last["content"]).strip() or isinstance(last["content"], list)
        ):
            raise ma.ValidationError("The last message must not be blank.", "messages")
        called: set[str] = set()
        for index, message in enumerate(messages):
            called.update(call["id"] for call in message.get("tool_calls") or ())
            if message["role"] == "tool" and message["tool_call_id"] not in called:
                problem = "Must answer a tool call of an earlier assistant message."
                raise ma.ValidationError({str(index): {"tool_call_id": [problem]}}, "messages")

    @ma.validates_schema
    def _tools_and_choice_agree(self, data, **kwargs):
        tools, choice = data.get("tools") or [], data.get("tool_choice")
        names = [tool["function"]["name"] for tool in tools]
        if len(set(names)) != len(names):
            raise ma.ValidationError("Tool names must be unique.", "tools")
        if choice not in (None, "none") and not tools:
            raise ma.ValidationError("tool_choice needs tools.", "tool_choice")
        if isinstance(choice, dict) and choice["function"]["name"] not in names:
            raise ma.ValidationError("Names a function that is not in tools.", "tool_choice")
        if data.get("top_logprobs") and not data.get("logprobs"):
            raise ma.ValidationError("top_logprobs needs logprobs: true.", "top_logprobs")

    @ma.validates_schema
    def _refuse_the_unsupported(self, data, **kwargs):
        """Parameters no deployment of this gateway can honour: 400 naming each."""
        if (data.get("n") or 1) > 1:
            raise ma.ValidationError(
                "Only n=1 is supported: send n requests to get n answers (they run in "
                "parallel on the workers; see the OpenAI compatibility docs).",
                "n",
            )
        for field in ("audio", "web_search_options", "functions", "function_call"):
            if data.get(field) is not None:
                raise ma.ValidationError(_REFUSALS[field], field)
        if any(kind != "text" for kind in data.get("modalities") or ()):
            raise ma.ValidationError("Only the text modality is supported.", "modalities")
        provider = get_settings().models.llm_provider
        if data.get("logit_bias") and provider == "ollama":
            raise ma.ValidationError(
                "Ollama has no logit bias; this gateway's model server is Ollama.", "logit_bias"
            )


_REFUSALS = {
    "audio": "Audio output is not supported: the gateway's models answer in text.",
    "web_search_options": "OpenAI's search models are not served here; the gateway's own web "
    "search is enabled per model by the operator (OPENAI_WEB_SEARCH_MODELS).",
    "functions": "The deprecated functions parameter is not supported: use tools.",
    "function_call": "The deprecated function_call parameter is not supported: use tool_choice.",
}


class UsageSchema(ma.Schema):
    prompt_tokens = F.Integer()
    completion_tokens = F.Integer()
    total_tokens = F.Integer()


class FunctionCallOutSchema(ma.Schema):
    name = F.String()
    arguments = F.String()


class ToolCallOutSchema(ma.Schema):
    id = F.String()
    type = F.String()
    function = F.Nested(FunctionCallOutSchema)


class AssistantMessageSchema(ma.Schema):
    role = F.String()
    content = F.String(allow_none=True)
    refusal = F.String(allow_none=True)
    tool_calls = F.List(F.Nested(ToolCallOutSchema))


class ChoiceSchema(ma.Schema):
    index = F.Integer()
    message = F.Nested(AssistantMessageSchema)
    logprobs = F.Dict(allow_none=True)
    finish_reason = F.String(allow_none=True)


class ChatCompletionSchema(ma.Schema):
    id = F.String()
    object = F.String()
    created = F.Integer()
    model = F.String()
    system_fingerprint = F.String(allow_none=True)
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


class PromptField(F.Field):
    """A prompt: a string, or a list holding one string (one choice per prompt: n=1)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, list):
            raise ma.ValidationError(
                "One prompt per request: send several requests (they run in parallel)."
            )
        if not isinstance(value, str):
            raise ma.ValidationError(
                "Must be a string: token arrays are not supported (the model servers take text)."
            )
        if not value.strip():
            raise ma.ValidationError("Must not be blank.")
        message_fits(value)
        return value


class CompletionRequestSchema(StrictSchema):
    """OpenAI's legacy completions, served by the chat models (the prompt is the user's
    message)."""

    model = F.String(required=True, validate=validate.Length(min=1, max=200))
    prompt = PromptField(required=True, metadata={"oneOf": [{"type": "string"}]})
    stream = StrictBoolean(load_default=False)
    stream_options = F.Nested(StreamOptionsSchema, allow_none=True)
    # OpenAI's default for this endpoint is 16 tokens.
    max_tokens = StrictInteger(
        load_default=16, allow_none=True, validate=[validate.Range(min=1), max_tokens_fits]
    )
    temperature = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=2))
    top_p = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    stop = StopField(allow_none=True, metadata={"oneOf": [{"type": "string"}, {"type": "array"}]})
    seed = StrictInteger(allow_none=True)
    presence_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    frequency_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    # The number of most likely tokens to list per position (0 to 5), as OpenAI's.
    logprobs = StrictInteger(allow_none=True, validate=validate.Range(min=0, max=5))
    logit_bias = F.Dict(keys=F.String(), values=StrictFloat(), allow_none=True)
    n = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=128))
    best_of = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=20))
    echo = StrictBoolean(allow_none=True)
    suffix = F.String(allow_none=True)
    user = F.String(allow_none=True, validate=validate.Length(max=256))

    @ma.validates_schema
    def _refuse_the_unsupported(self, data, **kwargs):
        if (data.get("n") or 1) > 1 or (data.get("best_of") or 1) > 1:
            field = "n" if (data.get("n") or 1) > 1 else "best_of"
            raise ma.ValidationError("Only one completion per request is supported.", field)
        if data.get("echo"):
            raise ma.ValidationError("echo is not supported: the prompt is yours already.", "echo")
        if data.get("suffix"):
            raise ma.ValidationError("suffix (fill-in-the-middle) is not supported.", "suffix")
        if data.get("logit_bias") and get_settings().models.llm_provider == "ollama":
            raise ma.ValidationError(
                "Ollama has no logit bias; this gateway's model server is Ollama.", "logit_bias"
            )


class CompletionChoiceSchema(ma.Schema):
    index = F.Integer()
    text = F.String()
    logprobs = F.Dict(allow_none=True)
    finish_reason = F.String(allow_none=True)


class CompletionSchema(ma.Schema):
    id = F.String()
    object = F.String()
    created = F.Integer()
    model = F.String()
    choices = F.List(F.Nested(CompletionChoiceSchema))
    usage = F.Nested(UsageSchema)
