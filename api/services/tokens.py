"""JWT pairs: issue, rotate, revoke. Revocations live in Redis for the token's remaining life.

Every pair issued by one login shares a family id (`fam`). Logging out, or replaying a
refresh token that was already rotated (a sign it was stolen), revokes the whole family.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token

from api.extensions import redis_store
from api.models import User
from api.services.errors import Unauthorized


def _revoked_jti_key(jti: str) -> str:
    return redis_store.key("jwt", "revoked", jti)


def _revoked_family_key(family: str) -> str:
    return redis_store.key("jwt", "family", family)


def _remaining_seconds(payload: dict[str, Any]) -> int:
    # At least one second, so a token on the edge of expiry is still recorded.
    return max(int(payload["exp"] - time.time()), 1)


def issue_pair(user: User, family: str | None = None) -> dict[str, Any]:
    claims = {"role": user.role, "ver": user.token_version, "fam": family or uuid.uuid4().hex}
    identity = str(user.id)
    return {
        "access_token": create_access_token(identity=identity, additional_claims=claims),
        "refresh_token": create_refresh_token(identity=identity, additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": current_app.config["JWT_ACCESS_TOKEN_EXPIRES"],
    }


def is_revoked(payload: dict[str, Any]) -> bool:
    family = payload.get("fam", "")
    if not isinstance(family, str) or not isinstance(payload.get("jti"), str):
        return True  # not a token this gateway issued
    jti_revoked, family_revoked = redis_store.client.mget(
        _revoked_jti_key(payload["jti"]), _revoked_family_key(family)
    )
    if jti_revoked and payload.get("type") == "refresh" and not family_revoked:
        revoke_family(family)  # a rotated refresh token came back: treat it as stolen
    return bool(jti_revoked or family_revoked)


def revoke(payload: dict[str, Any]) -> None:
    redis_store.client.set(_revoked_jti_key(payload["jti"]), "1", ex=_remaining_seconds(payload))


def revoke_family(family: str) -> None:
    # The family outlives none of its tokens: refresh tokens are the longest-lived.
    ttl = current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    redis_store.client.set(_revoked_family_key(family), "1", ex=ttl)


def consume_refresh(payload: dict[str, Any]) -> bool:
    """Mark a refresh token used; False if another request used it first (atomic SET NX)."""
    key = _revoked_jti_key(payload["jti"])
    return bool(redis_store.client.set(key, "1", nx=True, ex=_remaining_seconds(payload)))


def rotate(user: User, payload: dict[str, Any]) -> dict[str, Any]:
    """A new pair for a refresh token, which is used up by this call."""
    if not consume_refresh(payload):  # a concurrent request rotated it first
        revoke_family(payload.get("fam", ""))
        raise Unauthorized("The refresh token was already used.", code="token_revoked")
    return issue_pair(user, family=payload.get("fam"))


def revoke_session(payload: dict[str, Any]) -> None:
    """Log out: the presented token and every token of its login session."""
    revoke(payload)
    revoke_family(payload.get("fam", ""))
