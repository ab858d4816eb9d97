"""The flask-smorest Api: OpenAPI spec at /openapi.json, Swagger UI at /docs, blueprints."""

from __future__ import annotations

from http import HTTPStatus

import swagger_ui_bundle
from apispec import BasePlugin
from flask import Flask, send_from_directory

from api.errors import OPENAI_PREFIX, GatewayApi
from api.resources import (
    admin,
    auth,
    batches,
    chat,
    conversations,
    embeddings,
    health,
    jobs,
    metrics,
    openai_compat,
    responses,
    users,
)
from api.schemas.openai_compat import OpenAIErrorSchema

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
    responses.blp,
    embeddings.blp,
]


SWAGGER_ASSETS_URL = "/docs/assets/"


def _is_error(code) -> bool:
    return str(code) == "default" or str(code)[0] in "45"


def _description(code, response) -> str:
    if isinstance(response, dict) and response.get("description"):
        return response["description"]
    return "Any other error" if str(code) == "default" else HTTPStatus(int(code)).phrase


class SharedErrorsPlugin(BasePlugin):
    """Lists on each operation the errors that code shared by every view answers.

    Authentication and rate limits (401, 429), the JSON body checks (400, 413, 415), id
    lookups (404) and a backing service that is down (503) are not in the views, so no
    view decorator documents them; without this, only flask-smorest's `default` response
    covered them and clients could not tell which statuses to expect. Every error has the
    gateway's error shape, OpenAI's under /v1 (where a validation error is a 400, not 422).
    """

    def operation_helper(self, path=None, operations=None, **kwargs):
        openai = path.startswith(OPENAI_PREFIX)
        schema = {"$ref": f"#/components/schemas/{'OpenAIError' if openai else 'Error'}"}
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            codes = [503]
            if "{" in path:
                codes.append(404)
            if operation.get("security"):
                codes += [401, 429]
            if "requestBody" in operation:
                codes += [400, 413, 415]
            if openai and (422 in responses or "422" in responses):
                codes.append(400)  # OpenAI answers invalid query arguments with 400 too
            for code in codes:
                if code not in responses and str(code) not in responses:
                    responses[code] = HTTPStatus(code).name  # flask-smorest's component
            if openai:
                responses.pop(422, None)
                responses.pop("422", None)
            for code, response in list(responses.items()):
                # flask-smorest's components (references) already have the gateway's shape;
                # an alt_response given only a description gets it here.
                described_only = isinstance(response, dict) and "content" not in response
                if _is_error(code) and (openai or described_only):
                    responses[code] = {
                        "description": _description(code, response),
                        "content": {"application/json": {"schema": schema}},
                    }


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
            },
            "extra_plugins": [SharedErrorsPlugin()],
        },
    )
    api.spec.components.schema("OpenAIError", schema=OpenAIErrorSchema)
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
