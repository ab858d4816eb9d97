"""The flask-smorest Api: OpenAPI spec at /openapi.json, Swagger UI at /docs, blueprints."""

from __future__ import annotations

from flask import Flask

from api.errors import GatewayApi
from api.resources import admin, auth, conversations, health, users

BLUEPRINTS = [health.blp, auth.blp, users.blp, conversations.blp, admin.blp]


def init_app(app: Flask) -> GatewayApi:
    api = GatewayApi(
        app,
        spec_kwargs={
            "info": {
                "description": "One authenticated, rate-limited API in front of local LLM servers."
            }
        },
    )
    api.spec.components.security_scheme(
        "bearerAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "An access JWT from /api/auth/login, or an API key (gw_…)",
        },
    )
    api.spec.components.security_scheme(
        "apiKeyHeader", {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    )
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    return api
