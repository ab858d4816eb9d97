from __future__ import annotations

import marshmallow as ma

from core.models import JOB_STATUSES, TIERS

F = ma.fields


class PercentilesSchema(ma.Schema):
    avg = F.Float(allow_none=True)
    p50 = F.Float(allow_none=True)
    p95 = F.Float(allow_none=True)
    p99 = F.Float(allow_none=True)


class ObservedSchema(PercentilesSchema):
    count = F.Integer(metadata={"description": "Observations the figures are drawn from"})


class SlowRequestSchema(ma.Schema):
    path = F.String()
    method = F.String()
    status = F.Integer()
    duration_ms = F.Float()
    time = F.String(metadata={"description": "When it finished (UTC, ISO 8601)"})
    request_id = F.String(allow_none=True)


class RequestMetricsSchema(ma.Schema):
    total = F.Integer()
    by_route = F.Dict(
        keys=F.String(),
        values=F.Integer(),
        metadata={"description": "'METHOD route-template' → requests"},
    )
    by_status = F.Dict(keys=F.String(), values=F.Integer())
    duration_ms = F.Nested(
        PercentilesSchema,
        metadata={
            "description": "Time to the response headers; percentiles from histogram buckets"
        },
    )
    slowest = F.List(F.Nested(SlowRequestSchema))


class TierMetricsSchema(ma.Schema):
    model = F.String()
    queue_depth = F.Integer(
        allow_none=True,
        metadata={"description": "Messages waiting on the tier's queue now (null: broker down)"},
    )
    jobs = F.Dict(
        keys=F.String(validate=ma.validate.OneOf(JOB_STATUSES)),
        values=F.Integer(),
        metadata={"description": "queued and running: now; the others: ended so far"},
    )
    queue_wait_ms = F.Nested(ObservedSchema)
    ttft_ms = F.Nested(ObservedSchema)
    tokens_per_second = F.Nested(ObservedSchema)
    cache_hits = F.Integer(metadata={"description": "Jobs answered without a generation"})
    cache_hit_ratio = F.Float(allow_none=True)
    rate_limited = F.Integer(metadata={"description": "Submissions refused by a job quota"})


class TokenCountsSchema(ma.Schema):
    prompt = F.Integer()
    completion = F.Integer()


class RateLimitedSchema(ma.Schema):
    total = F.Integer()
    by_reason = F.Dict(keys=F.String(), values=F.Integer())


class MetricsSchema(ma.Schema):
    generated_at = F.String()
    requests = F.Nested(RequestMetricsSchema)
    tiers = F.Dict(
        keys=F.String(validate=ma.validate.OneOf(TIERS)), values=F.Nested(TierMetricsSchema)
    )
    tokens_by_model = F.Dict(
        keys=F.String(),
        values=F.Nested(TokenCountsSchema),
        metadata={"description": "Tokens the model servers processed (cached answers excluded)"},
    )
    rate_limited = F.Nested(RateLimitedSchema)
