from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import StrictSchema, trimmed_text

# Long enough for any real password; stops multi-megabyte strings reaching bcrypt.
PASSWORD_FIELD_MAX = 1024


class RegisterSchema(StrictSchema):
    email = ma.fields.Email(required=True, validate=validate.Length(max=254))
    password = ma.fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(max=PASSWORD_FIELD_MAX),
        metadata={"description": "At least 8 characters and at most 72 bytes (bcrypt)."},
    )
    name = trimmed_text(100, required=False)


class LoginSchema(StrictSchema):
    email = ma.fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = ma.fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=PASSWORD_FIELD_MAX)
    )


class TokenPairSchema(ma.Schema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(
        required=True, metadata={"description": "Seconds until the access token expires"}
    )
