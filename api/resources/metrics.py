from __future__ import annotations

from api.metrics import report
from api.resources.blueprint import Blueprint
from api.schemas.metrics import MetricsSchema
from api.security import admin_required

blp = Blueprint("metrics", __name__, url_prefix="/api/metrics", description="Metrics")


@blp.route("/", methods=["GET"])
@admin_required
@blp.response(200, MetricsSchema)
@blp.alt_response(403, description="The caller is not an admin")
def get_metrics():
    """Request, job, queue, cache and rate-limit metrics of the whole deployment

    Counted in Redis by every API process and worker since the metrics were last reset;
    queue depth and queued/running jobs are read as they are now. Prometheus scrapers
    use GET /metrics instead.
    """
    return report.current()
