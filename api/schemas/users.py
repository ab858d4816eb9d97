from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas.auth import PASSWORD_FIELD_MAX
from api.schemas.common import (
    PaginationQuerySchema,
    StrictBoolean,
    StrictInteger,
    StrictSchema,
    page_schema,
    trimmed_text,
)
from core.models import ROLES


class UserSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    email = ma.fields.String(dump_only=True)
    name = ma.fields.String(dump_only=True)
    role = ma.fields.String(dump_only=True)
    is_active = ma.fields.Boolean(dump_only=True)
    rate_limit_per_minute = ma.fields.Integer(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Override of the role's per-minute limit (null: default)"},
    )
    created_at = ma.fields.DateTime(dump_only=True)
    updated_at = ma.fields.DateTime(dump_only=True)


class UpdateMeSchema(StrictSchema):
    """Only the name is yours to change; role, email and is_active are refused."""

    name = trimmed_text(100)


class ChangePasswordSchema(StrictSchema):
    current_password = ma.fields.String(
        required=True, load_only=True, validate=validate.Length(max=PASSWORD_FIELD_MAX)
    )
    new_password = ma.fields.String(
        required=True, load_only=True, validate=validate.Length(max=PASSWORD_FIELD_MAX)
    )


class AdminUserQuerySchema(PaginationQuerySchema):
    email = ma.fields.String(
        validate=validate.Length(min=1, max=254),
        metadata={"description": "Only users whose email contains this text"},
    )
    role = ma.fields.String(validate=validate.OneOf(ROLES))
    is_active = ma.fields.Boolean()


class AdminUserUpdateSchema(StrictSchema):
    role = ma.fields.String(validate=validate.OneOf(ROLES))
    is_active = StrictBoolean()
    rate_limit_per_minute = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=1_000_000),
        metadata={"description": "Requests per minute for this user; null restores the default"},
    )

    @ma.validates_schema
    def require_a_change(self, data, **_kwargs):
        if not data:
            raise ma.ValidationError(
                "Send at least one of: role, is_active, rate_limit_per_minute.", "_schema"
            )


UserPageSchema = page_schema(UserSchema, "UserPage")
