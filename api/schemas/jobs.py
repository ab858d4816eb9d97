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
from core.models import JOB_STATUSES


class JobCreateSchema(StrictSchema):
    message = TrimmedString(
        required=True,
        validate=[validate.Length(min=1, error="Must not be blank."), message_fits],
        metadata={"description": "The user's message", "example": "What is a Redis Stream?"},
    )
    conversation_id = ma.fields.UUID(
        metadata={"description": "Continue this conversation (its history goes to the model)"}
    )
    model = ma.fields.String(
        load_default="auto",
        validate=validate.Length(min=1, max=200),
        metadata={"description": "auto (default), light, heavy, or a configured model name"},
    )
    tools = StrictBoolean(
        load_default=True, metadata={"description": "Let the agent use web search"}
    )
    max_tokens = StrictInteger(validate=[validate.Range(min=1), max_tokens_fits])
    temperature = StrictFloat(validate=validate.Range(min=0, max=2))


class JobQuerySchema(PaginationQuerySchema):
    status = ma.fields.String(validate=validate.OneOf(JOB_STATUSES))


class RouteSchema(ma.Schema):
    tier = ma.fields.String()
    score = ma.fields.Float()
    reason = ma.fields.String()


class JobSchema(ma.Schema):
    id = ma.fields.UUID()
    status = ma.fields.String(metadata={"enum": list(JOB_STATUSES)})
    tier = ma.fields.String()
    model = ma.fields.String()
    route = ma.fields.Method("dump_route", metadata={"type": "object"})
    conversation_id = ma.fields.UUID(allow_none=True)
    message_id = ma.fields.UUID(attribute="assistant_message_id", allow_none=True)
    output = ma.fields.String(allow_none=True)
    tool_calls = ma.fields.List(
        ma.fields.Dict(),
        allow_none=True,
        metadata={"description": "The client's tools the model called (OpenAI-compatible API)"},
    )
    finish_reason = ma.fields.String(allow_none=True)
    error = ma.fields.Method("dump_error", allow_none=True)
    usage = ma.fields.Method("dump_usage", allow_none=True)
    timings = ma.fields.Method("dump_timings")
    attempts = ma.fields.Integer()
    cached = ma.fields.Boolean(
        metadata={"description": "Answered from the cache or by an identical job in progress"}
    )
    links = ma.fields.Method("dump_links")

    def dump_route(self, job):
        return {"tier": job.tier, "score": round(job.route_score, 3), "reason": job.route_reason}

    def dump_error(self, job):
        if not job.error_code:
            return None
        return {"code": job.error_code, "message": job.error_message}

    def dump_usage(self, job):
        if job.prompt_tokens is None and job.completion_tokens is None:
            return None
        prompt, completion = job.prompt_tokens or 0, job.completion_tokens or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def dump_timings(self, job):
        def iso(value):
            return value.isoformat() if value else None

        return {
            "created_at": iso(job.created_at),
            "started_at": iso(job.started_at),
            "first_token_at": iso(job.first_token_at),
            "finished_at": iso(job.finished_at),
            "queue_wait_ms": job.queue_wait_ms,
            "ttft_ms": job.ttft_ms,
            "duration_ms": job.duration_ms,
        }

    def dump_links(self, job):
        return {
            "self": url_for("jobs.get_job", job_id=job.id),
            "events": url_for("jobs.job_events", job_id=job.id),
        }


JobPageSchema = page_schema(JobSchema, "JobPage")


class JobEventSchema(ma.Schema):
    """One Server-Sent Event of a job's stream; the README lists each event's data."""

    id = ma.fields.String(
        metadata={"description": "The Redis stream entry id: send it back as Last-Event-ID"}
    )
    event = ma.fields.String(
        required=True,
        metadata={
            "enum": [
                "start",
                "token",
                "tool_call",
                "tool_result",
                "reset",
                "done",
                "error",
                "cancelled",
            ]
        },
    )
    data = ma.fields.String(required=True, metadata={"description": "A JSON object"})
    retry = ma.fields.Integer()


class ChatResponseSchema(ma.Schema):
    conversation_id = ma.fields.UUID()
    message_id = ma.fields.UUID(attribute="assistant_message_id")
    content = ma.fields.String(attribute="output")
    model = ma.fields.String()
    tier = ma.fields.String()
    route = ma.fields.Method("dump_route")
    usage = ma.fields.Method("dump_usage")
    job_id = ma.fields.UUID(attribute="id")
    cached = ma.fields.Boolean()

    dump_route = JobSchema.dump_route
    dump_usage = JobSchema.dump_usage
