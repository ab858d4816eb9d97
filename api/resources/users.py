from __future__ import annotations

import uuid

from api.rate_limits import password_change_per_user
from api.resources.blueprint import Blueprint
from api.schemas.api_keys import ApiKeyCreatedSchema, ApiKeyCreateSchema, ApiKeySchema
from api.schemas.auth import TokenPairSchema
from api.schemas.users import ChangePasswordSchema, UpdateMeSchema, UserSchema
from api.security import auth_required, current_identity
from api.services import accounts, api_keys, tokens

blp = Blueprint("user", __name__, url_prefix="/api/user", description="Your account and API keys")


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

    Every token issued before stops working; the response carries a fresh pair.
    API keys are separate credentials and keep working.
    """
    user = accounts.change_password(
        current_identity().user,
        current_password=payload["current_password"],
        new_password=payload["new_password"],
    )
    return tokens.issue_pair(user)


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
