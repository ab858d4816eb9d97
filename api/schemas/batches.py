from __future__ import annotations

import marshmallow as ma
from flask import url_for
from marshmallow import validate

from api.schemas.common import (
    PaginationQuerySchema,
    StrictBoolean,
    StrictFloat,
    StrictInteger,
    StrictSchema,
    TrimmedString,
    max_tokens_fits,
    message_fits,
    page_schema,
)
from api.schemas.openai_compat import ChatCompletionRequestSchema
from core.models import BATCH_STATUSES

F = ma.fields

custom_id_field = TrimmedString(
    required=True,
    validate=validate.Length(min=1, max=64),
    metadata={"description": "Your id for the request; unique within the batch"},
)


class BatchItemSchema(StrictSchema):
    """One request of the JSON form."""

    custom_id = custom_id_field
    message = TrimmedString(
        required=True, validate=[validate.Length(min=1, error="Must not be blank."), message_fits]
    )
    model = F.String(validate=validate.Length(min=1, max=200))
    tools = StrictBoolean()
    max_tokens = StrictInteger(validate=[validate.Range(min=1), max_tokens_fits])
    temperature = StrictFloat(validate=validate.Range(min=0, max=2))


class BatchLineBodySchema(ChatCompletionRequestSchema):
    @ma.validates("stream")
    def _not_streamed(self, value, **kwargs):
        if value:
            raise ma.ValidationError("A batch request cannot stream.")


class BatchLineSchema(StrictSchema):
    """One line of OpenAI's batch file format."""

    custom_id = custom_id_field
    method = F.String(required=True, validate=validate.Equal("POST"))
    url = F.String(required=True, validate=validate.Equal("/v1/chat/completions"))
    body = F.Nested(BatchLineBodySchema, required=True)


class BatchCreateSchema(StrictSchema):
    requests = F.List(
        F.Raw(),
        required=True,
        metadata={
            "description": "[{custom_id, message, model?, tools?, max_tokens?, temperature?}]; "
            "every request is checked before any runs",
            "example": [{"custom_id": "q1", "message": "What is a Redis Stream?"}],
        },
    )
    metadata = F.Dict(
        keys=F.String(validate=validate.Length(max=64)),
        values=F.String(validate=validate.Length(max=512)),
        validate=validate.Length(max=16),
        allow_none=True,
    )


class BatchQuerySchema(PaginationQuerySchema):
    pass


class RequestCountsSchema(ma.Schema):
    total = F.Integer()
    completed = F.Integer()
    failed = F.Integer()
    cancelled = F.Integer()
    pending = F.Integer(metadata={"description": "Queued or running"})


class BatchSchema(ma.Schema):
    id = F.UUID()
    object = F.Constant("batch")
    status = F.String(metadata={"enum": list(BATCH_STATUSES)})
    input_format = F.String(metadata={"enum": ["json", "jsonl"]})
    metadata = F.Dict(attribute="meta", allow_none=True)
    request_counts = F.Nested(RequestCountsSchema)
    created_at = F.DateTime()
    in_progress_at = F.DateTime(allow_none=True)
    completed_at = F.DateTime(allow_none=True)
    cancelling_at = F.DateTime(allow_none=True)
    cancelled_at = F.DateTime(allow_none=True)
    failed_at = F.DateTime(allow_none=True)
    links = F.Method("dump_links")

    def dump_links(self, batch):
        return {
            "self": url_for("batches.get_batch", batch_id=batch.id),
            "results": url_for("batches.get_results", batch_id=batch.id),
            "cancel": url_for("batches.cancel_batch", batch_id=batch.id),
        }


BatchPageSchema = page_schema(BatchSchema, "BatchPage")
