from __future__ import annotations

import re
from collections.abc import Mapping

import marshmallow as ma
from marshmallow import validate

from config.settings import get_settings

MAX_PAGE_SIZE = 100
# PostgreSQL text cannot hold NUL, and a lone surrogate (valid in JSON's \u escapes) is not
# encodable as UTF-8: both would fail deep inside a request instead of at validation.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "Must not contain NUL characters or unpaired surrogates."


def unstorable_text(data):
    """Error messages for every string in `data` that cannot be stored, by field path."""
    if isinstance(data, str):
        return [UNSTORABLE_MESSAGE] if _UNSTORABLE.search(data) else None
    if isinstance(data, Mapping):
        items = data.items()
    elif isinstance(data, list | tuple):
        items = enumerate(data)
    else:
        return None
    errors = {}
    for key, value in items:
        problem = unstorable_text(value)
        if isinstance(key, str) and _UNSTORABLE.search(key):
            problem = [UNSTORABLE_MESSAGE]
            key = _UNSTORABLE.sub("\ufffd", key)
        if problem:
            errors[key] = problem
    return errors or None


class StrictSchema(ma.Schema):
    """Unknown fields are an error, never silently dropped; text must be storable."""

    class Meta:
        unknown = ma.RAISE

    @ma.pre_load
    def storable_text(self, data, **kwargs):
        errors = unstorable_text(data)
        if errors:
            raise ma.ValidationError(errors if isinstance(errors, dict) else {"_schema": errors})
        return data


class PaginationQuerySchema(StrictSchema):
    page = ma.fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = ma.fields.Integer(
        load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )


def page_schema(item_schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    """A response envelope {items, total, page, page_size} around `item_schema`."""
    return ma.Schema.from_dict(
        {
            "items": ma.fields.List(ma.fields.Nested(item_schema), required=True),
            "total": ma.fields.Integer(required=True),
            "page": ma.fields.Integer(required=True),
            "page_size": ma.fields.Integer(required=True),
        },
        name=name,
    )


class StrictBoolean(ma.fields.Boolean):
    """Only JSON true or false: "yes", 1 or "true" are errors, not guesses."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class _JsonNumber:
    """Refuses strings and booleans that marshmallow would otherwise convert to numbers."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool | str):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictInteger(_JsonNumber, ma.fields.Integer):
    """Only JSON integers: "5" and 1.5 are errors, not conversions."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)


class StrictFloat(_JsonNumber, ma.fields.Float):
    """Only JSON numbers: "0.5" is an error, not a conversion."""


class TrimmedString(ma.fields.String):
    """A string with surrounding whitespace removed before it is validated."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


def trimmed_text(max_length: int, *, required: bool = True, **kwargs) -> TrimmedString:
    """A string that must not be blank once trimmed and fits in its column."""
    return TrimmedString(
        required=required,
        validate=[
            validate.Length(min=1, error="Must not be blank."),
            validate.Length(max=max_length),
        ],
        **kwargs,
    )


def message_fits(value: str) -> None:
    limit = get_settings().limits.max_message_chars
    if len(value) > limit:
        raise ma.ValidationError(f"Must be at most {limit} characters.")


def max_tokens_fits(value: int) -> None:
    limit = get_settings().models.max_tokens_limit
    if value > limit:
        raise ma.ValidationError(f"Must be at most {limit}.")
