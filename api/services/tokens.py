"""JWT pairs: issue, rotate, revoke. Each pair belongs to a login session.

A login starts a session (api/services/sessions.py, a row in PostgreSQL) and every pair
it leads to carries the session's id as the `fam` claim. A token counts while its session
does: logging out, or presenting a refresh token that is not the session's current one (a
sign it was stolen), ends the whole session.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask_jwt_extended import create_access_token, create_refresh_token

from api.services import sessions
from config.settings import get_settings
from core.models import User


def _new_jti() -> str:
    return str(uuid.uuid4())


def _pair(user: User, session_id: object, refresh_jti: str) -> dict[str, Any]:
    claims = {"role": user.role, "ver": user.token_version, "fam": str(session_id)}
    identity = str(user.id)
    # The session stores its refresh token's jti, so the jti is chosen here: additional
    # claims override the one flask-jwt-extended generates.
    refresh_claims = {**claims, "jti": refresh_jti}
    return {
        "access_token": create_access_token(identity=identity, additional_claims=claims),
        "refresh_token": create_refresh_token(identity=identity, additional_claims=refresh_claims),
        "token_type": "Bearer",
        "expires_in": get_settings().auth.access_token_seconds,
    }


def login(user: User, *, ip: str | None = None, user_agent: str | None = None) -> dict[str, Any]:
    """A new login session of `user` and its first pair."""
    refresh_jti = _new_jti()
    session = sessions.start(user, refresh_jti, ip=ip, user_agent=user_agent)
    return _pair(user, session.id, refresh_jti)


def rotate(
    user: User, payload: dict[str, Any], *, ip: str | None = None, user_agent: str | None = None
) -> dict[str, Any]:
    """A new pair for the session's current refresh token, which is used up by this call."""
    refresh_jti = _new_jti()
    fam = payload.get("fam")
    sessions.rotate(user, fam, payload["jti"], refresh_jti, ip=ip, user_agent=user_agent)
    return _pair(user, fam, refresh_jti)


def is_revoked(payload: dict[str, Any]) -> bool:
    """Whether a verified token no longer counts: its session has ended, or has no row."""
    if not isinstance(payload.get("jti"), str):
        return True  # not a token this gateway issued
    return not sessions.is_active(payload.get("fam"))


def logout(user: User, payload: dict[str, Any]) -> None:
    """End the login session of the presented token, and with it every token it issued."""
    sessions.end(user.id, payload.get("fam"), "logout")
