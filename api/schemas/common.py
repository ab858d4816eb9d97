from __future__ import annotations

import marshmallow as ma
from flask import current_app
from marshmallow import validate

MAX_PAGE_SIZE = 100


class StrictSchema(ma.Schema):
    """Unknown fields are an error, never silently dropped."""

    class Meta:
        unknown = ma.RAISE


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
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    if len(value) > limit:
        raise ma.ValidationError(f"Must be at most {limit} characters.")


def max_tokens_fits(value: int) -> None:
    limit = current_app.config["MAX_TOKENS_LIMIT"]
    if value > limit:
        raise ma.ValidationError(f"Must be at most {limit}.")
