from __future__ import annotations

from flask import request
from flask_jwt_extended import get_current_user, get_jwt, jwt_required

from api.rate_limits import login_per_email, login_per_email_and_ip, login_per_ip, register_per_ip
from api.resources.blueprint import Blueprint
from api.schemas.auth import LoginSchema, RegisterSchema, TokenPairSchema
from api.schemas.users import UserSchema
from api.security.decorators import SECURITY
from api.services import accounts, tokens

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Accounts and tokens")


@blp.route("/register", methods=["POST"])
@register_per_ip
@blp.arguments(RegisterSchema)
@blp.response(201, UserSchema)
@blp.alt_response(409, description="An account with this email already exists")
@blp.alt_response(429, description="Too many registrations from this address")
def register(payload):
    """Create an account

    Passwords need at least 8 characters and at most 72 bytes (bcrypt's limit: longer
    passwords are refused rather than silently truncated).
    """
    return accounts.register(payload["email"], payload["password"], payload.get("name"))


@blp.route("/login", methods=["POST"])
# The innermost limit is the one the X-RateLimit headers describe.
@login_per_ip
@login_per_email
@login_per_email_and_ip
@blp.arguments(LoginSchema)
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, description="Invalid email or password")
@blp.alt_response(429, description="Too many attempts from this address or for this account")
def login(payload):
    """Exchange email and password for an access and a refresh token

    Each login is a session of its own, listed at `GET /api/user/sessions`.
    """
    user = accounts.authenticate(payload["email"], payload["password"])
    return tokens.login(user, ip=request.remote_addr, user_agent=request.user_agent.string)


@blp.route("/refresh", methods=["POST"])
@jwt_required(refresh=True)
@blp.doc(security=[{"bearerAuth": []}])
@blp.response(200, TokenPairSchema)
def refresh():
    """Trade a refresh token (as the Bearer token) for a new pair

    The refresh token is single-use: it is revoked by this call. Presenting it again
    revokes every token of its login session. Each refresh extends the session to
    REFRESH_TOKEN_DAYS from now.
    """
    return tokens.rotate(
        get_current_user(),
        get_jwt(),
        ip=request.remote_addr,
        user_agent=request.user_agent.string,
    )


@blp.route("/logout", methods=["POST"])
@jwt_required()
@blp.doc(security=[SECURITY[0]])
@blp.response(204)
def logout():
    """End the login session of the presented access token

    Every token of the session stops working, the refresh token included.
    """
    tokens.logout(get_current_user(), get_jwt())
