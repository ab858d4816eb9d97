from __future__ import annotations

from datetime import UTC

import marshmallow as ma
from marshmallow import validate

from api.schemas.common import StrictSchema

F = ma.fields


class UtcDateTime(F.AwareDateTime):
    """An aware time, converted to UTC (PostgreSQL refuses offsets beyond ±15:59)."""

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # e.g. year 1 with a positive offset
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None


class StatsQuerySchema(StrictSchema):
    from_ = UtcDateTime(
        data_key="from",
        default_timezone=UTC,
        metadata={"description": "Start (ISO 8601, UTC when no offset); default: 24 h before `to`"},
    )
    to = UtcDateTime(default_timezone=UTC, metadata={"description": "End, exclusive; default: now"})
    top = F.Integer(
        load_default=10,
        validate=validate.Range(min=1, max=100),
        metadata={"description": "How many users the top list holds"},
    )


class UsageFiguresSchema(ma.Schema):
    requests = F.Integer(
        metadata={"description": "Chat and embeddings requests that ended (any outcome)"}
    )
    jobs = F.Integer(metadata={"description": "Chat requests a worker generated (not cached)"})
    errors = F.Integer(metadata={"description": "Requests that ended failed"})
    cache_hits = F.Integer(metadata={"description": "Requests answered from the cache"})
    prompt_tokens = F.Integer(metadata={"description": "Generated requests' prompt tokens"})
    completion_tokens = F.Integer()
    total_tokens = F.Integer()


class UserUsageSchema(UsageFiguresSchema):
    user_id = F.UUID()
    email = F.String()


class ModelUsageSchema(UsageFiguresSchema):
    model = F.String()
    tier = F.String()


class TopUserSchema(ma.Schema):
    user_id = F.UUID()
    email = F.String()
    total_tokens = F.Integer()


class StatsSchema(ma.Schema):
    from_ = F.DateTime(data_key="from")
    to = F.DateTime()
    totals = F.Nested(UsageFiguresSchema)
    by_user = F.List(F.Nested(UserUsageSchema))
    by_model = F.List(F.Nested(ModelUsageSchema))
    top_users = F.List(F.Nested(TopUserSchema))
