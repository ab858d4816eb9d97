from __future__ import annotations

from api.extensions import limiter
from api.resources.blueprint import Blueprint
from api.schemas.health import HealthSchema
from api.services import health

blp = Blueprint("health", __name__, description="Readiness")


@blp.route("/health", methods=["GET"])
@limiter.exempt
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="A backing service does not answer")
def get_health():
    """Whether the database and Redis answer (no authentication)"""
    ok, checks = health.check()
    return {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
