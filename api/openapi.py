"""The flask-smorest Api: OpenAPI spec at /openapi.json, Swagger UI at /docs, blueprints."""

from __future__ import annotations

import swagger_ui_bundle
from flask import Flask, send_from_directory

from api.errors import GatewayApi
from api.resources import (
    admin,
    auth,
    batches,
    chat,
    conversations,
    health,
    jobs,
    metrics,
    openai_compat,
    users,
)

BLUEPRINTS = [
    health.blp,
    auth.blp,
    users.blp,
    conversations.blp,
    jobs.blp,
    chat.blp,
    batches.blp,
    admin.blp,
    metrics.blp,
    openai_compat.blp,
]


SWAGGER_ASSETS_URL = "/docs/assets/"


def _serve_swagger_assets(app: Flask) -> None:
    """Serve Swagger UI's files from the installed package: /docs works without internet."""

    @app.route(f"{SWAGGER_ASSETS_URL}<path:filename>", endpoint="swagger_assets")
    def swagger_asset(filename: str):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)


def init_app(app: Flask) -> GatewayApi:
    if app.config["OPENAPI_SWAGGER_UI_URL"] == SWAGGER_ASSETS_URL:
        _serve_swagger_assets(app)
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
