from __future__ import annotations

import marshmallow as ma

from core.models import REVOKE_REASONS


class SessionSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    created_at = ma.fields.DateTime(dump_only=True)
    last_used_at = ma.fields.DateTime(
        dump_only=True, metadata={"description": "The login or the last refresh"}
    )
    expires_at = ma.fields.DateTime(
        dump_only=True,
        metadata={"description": "REFRESH_TOKEN_DAYS after the last use; each refresh extends it"},
    )
    active = ma.fields.Boolean(
        dump_only=True, metadata={"description": "Neither revoked nor expired"}
    )
    revoked_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    revoked_reason = ma.fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Why it ended: " + ", ".join(REVOKE_REASONS)},
    )
    ip = ma.fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "The client address of the login or the last refresh"},
    )
    user_agent = ma.fields.String(
        dump_only=True, allow_none=True, metadata={"description": "Its first 200 characters"}
    )
    current = ma.fields.Boolean(
        dump_only=True, metadata={"description": "The session of the token of this request"}
    )


class SessionsRevokedSchema(ma.Schema):
    revoked = ma.fields.Integer(
        required=True, metadata={"description": "How many active sessions were ended"}
    )
