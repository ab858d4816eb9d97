from __future__ import annotations

import uuid

import marshmallow as ma
from flask import Response, request, stream_with_context

from api.http_guards import accepts_uploads
from api.resources.blueprint import Blueprint
from api.schemas.batches import BatchCreateSchema, BatchPageSchema, BatchQuerySchema, BatchSchema
from api.security import auth_required, current_identity
from api.services import batches
from core.errors import InvalidBatch, InvalidInput, ServiceError

blp = Blueprint("batches", __name__, url_prefix="/api/batches", description="Batches")

JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines")


def _uploaded_text() -> str:
    upload = request.files.get("file")
    raw = upload.read() if upload is not None else request.get_data()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidBatch("The batch file must be UTF-8 text.") from exc


def _parse_request() -> tuple[list[batches.BatchRequest], str, dict | None]:
    if request.mimetype == "multipart/form-data" or request.mimetype in JSONL_TYPES:
        if request.mimetype == "multipart/form-data" and "file" not in request.files:
            raise InvalidBatch("Upload the JSONL file in the form field 'file'.")
        return batches.parse_jsonl(_uploaded_text()), "jsonl", None
    body = request.get_json(silent=True)
    if body is None:  # a 400, as on every other endpoint
        raise ServiceError("The request body is not valid JSON.")
    try:
        payload = BatchCreateSchema().load(body)
    except ma.ValidationError as exc:
        raise InvalidInput(
            "The batch is invalid (see details).", details={"json": exc.messages}
        ) from exc
    return batches.parse_items(payload["requests"]), "json", payload.get("metadata")


@blp.route("/", methods=["POST"])
@accepts_uploads
@auth_required
@blp.response(202, BatchSchema)
@blp.alt_response(
    400, description="A bad batch (code invalid_batch): details.lines lists each bad line"
)
@blp.alt_response(409, description="Your stored batches are at their cap (too_many_batches)")
@blp.alt_response(422, description="The JSON form's fields are invalid (see details)")
@blp.alt_response(
    429,
    description="Rate limited, or too many of your batches are active (too_many_active_batches)",
)
@blp.doc(
    requestBody={
        "required": True,
        "content": {
            "application/json": {"schema": BatchCreateSchema},
            "application/jsonl": {
                "schema": {"type": "string", "description": "OpenAI batch lines"}
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
)
def create_batch():
    """Submit a batch of prompts

    Either JSON `{requests: [{custom_id, message, model?, tools?, max_tokens?}], metadata?}`
    or a JSONL file in OpenAI's batch format (`{custom_id, method: "POST", url:
    "/v1/chat/completions", body}` per line) as the body (`application/jsonl`) or in the
    form field `file`. Every request is checked first: a bad batch is a 400 listing the bad
    lines, and nothing runs. Requests run at a lower priority than interactive ones.
    """
    requests, input_format, metadata = _parse_request()
    batch = batches.create(
        current_identity(), requests, input_format=input_format, metadata=metadata
    )
    return batches.with_counts(batch)


@blp.route("/", methods=["GET"])
@auth_required
@blp.arguments(BatchQuerySchema, location="query", unknown=ma.RAISE)
@blp.response(200, BatchPageSchema)
def list_batches(query):
    """Your batches, newest first"""
    return batches.list_page(current_identity().user_id, query["page"], query["page_size"])


@blp.route("/<uuid:batch_id>", methods=["GET"])
@auth_required
@blp.response(200, BatchSchema)
def get_batch(batch_id: uuid.UUID):
    """A batch's status, request counts and timestamps"""
    return batches.with_counts(batches.get(current_identity().user_id, batch_id))


@blp.route("/<uuid:batch_id>/results", methods=["GET"])
@auth_required
@blp.doc(
    responses={
        "200": {
            "description": "One JSON object per ended request and line: "
            "{id, custom_id, status, response, error}",
            "content": {"application/jsonl": {"schema": {"type": "string"}}},
        }
    }
)
def get_results(batch_id: uuid.UUID):
    """The ended requests' results as JSON Lines, keyed by custom_id"""
    batch = batches.get(current_identity().user_id, batch_id)
    return Response(
        stream_with_context(batches.results(batch)),
        mimetype="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}.jsonl"'},
    )


@blp.route("/<uuid:batch_id>", methods=["DELETE"])
@auth_required
@blp.response(204)
@blp.alt_response(409, description="The batch has not ended: cancel it first")
def delete_batch(batch_id: uuid.UUID):
    """Delete an ended batch and its results

    Frees room under the cap on stored batches (code too_many_batches). A batch that is
    still active is a 409: cancel it first. Usage records of its requests stay.
    """
    batches.delete(current_identity().user_id, batch_id)


@blp.route("/<uuid:batch_id>/cancel", methods=["POST"])
@auth_required
@blp.response(202, BatchSchema)
@blp.alt_response(409, description="The batch has already ended")
def cancel_batch(batch_id: uuid.UUID):
    """Cancel a batch: requests not started never run; results so far stay readable"""
    return batches.with_counts(batches.cancel(current_identity().user_id, batch_id))
