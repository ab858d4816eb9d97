from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import g, request
from flask_jwt_extended import get_current_user, get_jwt, verify_jwt_in_request
from flask_smorest import Blueprint

from api.services import api_keys as api_keys_service
from api.services.identity import Identity
from config.logging_setup import user_id_var
from core.errors import Forbidden

# OpenAPI security requirements: any one of them is enough.
SECURITY = [{"bearerAuth": []}, {"apiKeyHeader": []}]

API_KEY_HEADER = "X-API-Key"


def presented_api_key() -> str | None:
    """The API key in X-API-Key or in `Authorization: Bearer gw_…`, if the caller sent one."""
    key = request.headers.get(API_KEY_HEADER)
    if key is not None:
        return key.strip()
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer" and credential.startswith(api_keys_service.KEY_PREFIX):
        return credential
    return None


def authenticate_request() -> Identity:
    api_key = presented_api_key()
    if api_key is not None:
        key = api_keys_service.authenticate(api_key)
        return Identity(user=key.user, method="api_key", api_key_id=key.id)
    # Raises flask-jwt-extended's errors (missing, expired, revoked…), answered as 401.
    verify_jwt_in_request()
    return Identity(user=get_current_user(), method="jwt", token=get_jwt())


def _guard(view: Callable, *, admin: bool) -> Callable:
    from api.rate_limits import per_identity  # the limits need the identity set here

    limited = per_identity(view)

    @wraps(view)
    def wrapper(*args, **kwargs):
        identity = authenticate_request()
        g.identity = identity
        user_id_var.set(str(identity.user_id))
        if admin and not identity.is_admin:
            raise Forbidden("This endpoint requires the admin role.")
        return limited(*args, **kwargs)

    # Put it outermost, above @blp.arguments, so a stranger gets 401 before any 422.
    return Blueprint.doc(security=SECURITY)(wrapper)


def auth_required(view: Callable) -> Callable:
    """Accept an access JWT or an API key; the caller is then `current_identity()`."""
    return _guard(view, admin=False)


def admin_required(view: Callable) -> Callable:
    """Like auth_required, and answer 403 unless the caller has the admin role."""
    return _guard(view, admin=True)
