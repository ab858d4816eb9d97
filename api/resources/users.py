from __future__ import annotations

import uuid

from flask import request

from api.rate_limits import password_change_per_user
from api.resources.blueprint import Blueprint
from api.schemas.api_keys import ApiKeyCreatedSchema, ApiKeyCreateSchema, ApiKeySchema
from api.schemas.auth import TokenPairSchema
from api.schemas.sessions import SessionSchema, SessionsRevokedSchema
from api.schemas.users import ChangePasswordSchema, UpdateMeSchema, UserSchema
from api.security import auth_required, current_identity
from api.services import accounts, api_keys, sessions, tokens

blp = Blueprint(
    "user",
    __name__,
    url_prefix="/api/user",
    description="Your account, login sessions and API keys",
)


@blp.route("/me", methods=["GET"])
@auth_required
@blp.response(200, UserSchema)
def get_me():
    """Your profile"""
    return current_identity().user


@blp.route("/me", methods=["PUT"])
@auth_required
@blp.arguments(UpdateMeSchema)
@blp.response(200, UserSchema)
def update_me(payload):
    """Change your name

    Only `name` is writable; sending role, email or is_active is refused with 422.
    """
    return accounts.update_profile(current_identity().user, name=payload["name"])


@blp.route("/me/password", methods=["PUT"])
@auth_required
@password_change_per_user
@blp.arguments(ChangePasswordSchema)
@blp.response(200, TokenPairSchema)
def change_password(payload):
    """Change your password

    Every token issued before stops working and every login session ends; the response
    carries a fresh pair, of a new session. API keys are separate credentials and keep
    working.
    """
    user = accounts.change_password(
        current_identity().user,
        current_password=payload["current_password"],
        new_password=payload["new_password"],
    )
    return tokens.login(user, ip=request.remote_addr, user_agent=request.user_agent.string)


def _presented_session() -> str | None:
    """The `fam` of the access token of this request (None for an API key)."""
    token = current_identity().token
    return token.get("fam") if token else None


@blp.route("/sessions", methods=["GET"])
@auth_required
@blp.response(200, SessionSchema(many=True))
def list_sessions():
    """Your login sessions, active ones first

    One per login; ended ones stay listed for a week after they expired or were revoked.
    `current` marks the session of the access token sent with this request.
    """
    return sessions.list_for(current_identity().user, _presented_session())


@blp.route("/sessions/<uuid:session_id>", methods=["DELETE"])
@auth_required
@blp.response(204)
def delete_session(session_id: uuid.UUID):
    """End one of your login sessions; its tokens stop working at once"""
    sessions.end_own(current_identity().user, session_id)


@blp.route("/sessions", methods=["DELETE"])
@auth_required
@blp.response(200, SessionsRevokedSchema)
def delete_sessions():
    """End all your login sessions, this request's included

    Every access and refresh token stops working; API keys keep working.
    """
    return {"revoked": sessions.end_all(current_identity().user_id, "user")}


@blp.route("/api-keys", methods=["POST"])
@auth_required
@blp.arguments(ApiKeyCreateSchema)
@blp.response(201, ApiKeyCreatedSchema)
@blp.alt_response(409, description="Too many API keys")
def create_api_key(payload):
    """Create an API key; the secret is shown only in this response"""
    return api_keys.create(current_identity().user, payload["name"])


@blp.route("/api-keys", methods=["GET"])
@auth_required
@blp.response(200, ApiKeySchema(many=True))
def list_api_keys():
    """Your API keys (never their secrets)"""
    return api_keys.list_for_user(current_identity().user)


@blp.route("/api-keys/<uuid:key_id>", methods=["DELETE"])
@auth_required
@blp.response(204)
def delete_api_key(key_id: uuid.UUID):
    """Delete an API key; it stops working at once"""
    api_keys.revoke(current_identity().user, key_id)
