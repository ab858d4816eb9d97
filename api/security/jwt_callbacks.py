"""flask-jwt-extended hooks: who a token belongs to, whether it is revoked, and 401 bodies."""

from __future__ import annotations

from flask import Flask

from api.errors import error_response
from api.extensions import jwt
from api.services import accounts
from api.services import tokens as tokens_service


def _unauthorized(message: str, code: str = "unauthorized"):
    return error_response(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


def init_app(app: Flask) -> None:
    jwt.init_app(app)

    @jwt.user_lookup_loader
    def load_user(_header: dict, payload: dict):
        return accounts.user_for_token(payload)

    @jwt.token_in_blocklist_loader
    def is_revoked(_header: dict, payload: dict) -> bool:
        return tokens_service.is_revoked(payload)

    @jwt.unauthorized_loader
    def missing_token(_reason: str):
        return _unauthorized(
            "Authentication required: send 'Authorization: Bearer <token>' or 'X-API-Key'."
        )

    @jwt.invalid_token_loader
    def invalid_token(_reason: str):
        return _unauthorized("The token is invalid.", "invalid_token")

    @jwt.expired_token_loader
    def expired_token(_header: dict, _payload: dict):
        return _unauthorized("The token has expired.", "token_expired")

    @jwt.revoked_token_loader
    def revoked_token(_header: dict, _payload: dict):
        return _unauthorized("The token has been revoked.", "token_revoked")

    @jwt.user_lookup_error_loader
    def user_gone(_header: dict, _payload: dict):
        return _unauthorized(
            "The token is no longer valid (account inactive, or credentials changed).",
            "invalid_token",
        )
