from __future__ import annotations

from api.resources.blueprint import Blueprint
from api.schemas.embeddings import EmbeddingListSchema, EmbeddingRequestSchema
from api.security import auth_required, current_identity
from api.services import embeddings

blp = Blueprint(
    "embeddings",
    __name__,
    url_prefix="/v1",
    description="OpenAI's embeddings API, answered at once by the model server (no queue)",
)


@blp.route("/embeddings", methods=["POST"])
@auth_required
@blp.arguments(EmbeddingRequestSchema)
@blp.response(200, EmbeddingListSchema)
@blp.alt_response(404, description="Not an embedding model, or the model server lacks it")
@blp.alt_response(502, description="The model server failed (model_error, model_bad_response)")
@blp.alt_response(503, description="The model server cannot be reached or did not answer in time")
def create_embeddings(payload):
    """Create embeddings (OpenAI's embeddings.create)

    One embedding per text of `input`, in order, from an embedding model of EMBEDDING_MODELS.
    Answered synchronously in one round trip to the model server; the per-identity rate
    limit applies, DAILY_TOKEN_QUOTA does not (embeddings generate no tokens). With
    `encoding_format: base64` each vector is its little-endian float32 bytes in base64.
    Errors use OpenAI's shape.
    """
    return embeddings.create(current_identity(), payload)
