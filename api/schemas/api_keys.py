from __future__ import annotations

import marshmallow as ma

from api.schemas.common import StrictSchema, trimmed_text


class ApiKeyCreateSchema(StrictSchema):
    name = trimmed_text(100)


class ApiKeySchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(dump_only=True)
    prefix = ma.fields.String(
        dump_only=True, metadata={"description": "The key's first characters, to tell keys apart"}
    )
    created_at = ma.fields.DateTime(dump_only=True)
    last_used_at = ma.fields.DateTime(dump_only=True, allow_none=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    key = ma.fields.String(
        attribute="secret",
        dump_only=True,
        metadata={"description": "The secret. Shown only in this response."},
    )
