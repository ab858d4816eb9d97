"""Request and response shapes of POST /v1/embeddings (OpenAI's embeddings API)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import StrictInteger, StrictSchema

F = ma.fields
MAX_INPUTS = 2048  # OpenAI's limit on the texts of one request
ENCODING_FORMATS = ("float", "base64")
TEXT_ONLY = (
    "Token arrays are not supported: send the text itself (a string or a list of strings); "
    "this gateway's model servers tokenize text themselves."
)


def _is_token(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_token_array(value) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_token(t) for t in value)


class EmbeddingInputField(F.Field):
    """`input`: a string or a list of strings, loaded as the list of texts to embed."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if not value:
                raise ma.ValidationError("Must not be empty.")
            return [value]
        if not isinstance(value, list):
            raise ma.ValidationError("Must be a string or a list of strings.")
        if _is_token_array(value) or (value and all(_is_token_array(v) for v in value)):
            raise ma.ValidationError(TEXT_ONLY)
        if not 1 <= len(value) <= MAX_INPUTS:
            raise ma.ValidationError(f"Must hold 1 to {MAX_INPUTS} strings.")
        if not all(isinstance(text, str) for text in value):
            raise ma.ValidationError("Must be a string or a list of strings.")
        empty = next((i for i, text in enumerate(value) if not text), None)
        if empty is not None:
            raise ma.ValidationError(f"Item {empty} is empty; every text needs a character.")
        return list(value)


# A custom field: without this its spec would say "any value".
INPUT_SPEC = {
    "description": "The text to embed, or up to 2048 texts (one embedding each, in order)",
    "oneOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "maxItems": MAX_INPUTS,
        },
    ],
    "example": "The food was delicious and the waiter was friendly.",
}


class EmbeddingRequestSchema(StrictSchema):
    model = F.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "An embedding model of EMBEDDING_MODELS (GET /v1/models lists them)",
            "example": "nomic-embed-text",
        },
    )
    input = EmbeddingInputField(required=True, metadata=INPUT_SPEC)
    encoding_format = F.String(
        allow_none=True,
        load_default="float",
        validate=validate.OneOf(ENCODING_FORMATS),
        metadata={
            "description": "float: JSON numbers; base64: the little-endian float32 bytes, "
            "base64-encoded (what the openai SDKs ask for and decode)"
        },
    )
    dimensions = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "Fewer dimensions than the model's, if the model supports it"},
    )
    user = F.String(allow_none=True, validate=validate.Length(max=256))


EMBEDDING_SPEC = {
    "description": "The vector: numbers, or with encoding_format=base64 a base64 string",
    "oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}],
}


class EmbeddingSchema(ma.Schema):
    object = F.String(metadata={"enum": ["embedding"]})
    index = F.Integer(metadata={"description": "The position of its text in `input`"})
    embedding = F.Raw(metadata=EMBEDDING_SPEC)


class EmbeddingUsageSchema(ma.Schema):
    prompt_tokens = F.Integer(metadata={"description": "As the model server counted them"})
    total_tokens = F.Integer()


class EmbeddingListSchema(ma.Schema):
    object = F.String(metadata={"enum": ["list"]})
    data = F.List(F.Nested(EmbeddingSchema))
    model = F.String(metadata={"description": "The model name the request gave"})
    usage = F.Nested(EmbeddingUsageSchema)
