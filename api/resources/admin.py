from __future__ import annotations

import uuid

import marshmallow as ma

from api.resources.blueprint import Blueprint
from api.schemas.sessions import SessionsRevokedSchema
from api.schemas.stats import StatsQuerySchema, StatsSchema
from api.schemas.users import (
    AdminUserQuerySchema,
    AdminUserUpdateSchema,
    UserPageSchema,
    UserSchema,
)
from api.security import admin_required, current_identity
from api.services import admin_users, stats

blp = Blueprint("admin", __name__, url_prefix="/api/admin", description="Administration")


@blp.route("/users", methods=["GET"])
@admin_required
@blp.arguments(AdminUserQuerySchema, location="query", unknown=ma.RAISE)
@blp.response(200, UserPageSchema)
@blp.alt_response(403, description="The caller is not an admin")
def list_users(query):
    """All accounts, newest first, optionally filtered"""
    page, page_size = query.pop("page"), query.pop("page_size")
    filters = {
        "email_contains": query.get("email"),
        "role": query.get("role"),
        "is_active": query.get("is_active"),
    }
    return admin_users.list_page(page, page_size, **filters)


@blp.route("/users/<uuid:user_id>", methods=["PATCH"])
@admin_required
@blp.arguments(AdminUserUpdateSchema)
@blp.response(200, UserSchema)
@blp.alt_response(403, description="The caller is not an admin")
@blp.alt_response(409, description="Admins cannot change their own role or status")
def update_user(payload, user_id: uuid.UUID):
    """Change an account's role or active status

    Tokens issued before the change stop working, so a demoted or deactivated user
    loses access at once.
    """
    return admin_users.update(current_identity().user, user_id, **payload)


@blp.route("/users/<uuid:user_id>/sessions", methods=["DELETE"])
@admin_required
@blp.response(200, SessionsRevokedSchema)
@blp.alt_response(403, description="The caller is not an admin")
def end_user_sessions(user_id: uuid.UUID):
    """End every login session of an account

    Its access and refresh tokens stop working at once; the user may log in again (to
    keep them out, deactivate the account). API keys are not affected.
    """
    return {"revoked": admin_users.end_sessions(user_id)}


@blp.route("/stats", methods=["GET"])
@admin_required
@blp.arguments(StatsQuerySchema, location="query", unknown=ma.RAISE)
@blp.response(200, StatsSchema)
@blp.alt_response(403, description="The caller is not an admin")
def get_stats(query):
    """Usage per user and per model/tier over a time range, and the top users by tokens

    Drawn from the usage log: `requests` are chat and embeddings requests that ended, `jobs`
    the chat requests a worker generated, `cache_hits` those answered from the cache; tokens
    count what the model servers generated. Embeddings are the rows of tier `embeddings`.
    """
    return stats.report(query.get("from_"), query.get("to"), query["top"])
