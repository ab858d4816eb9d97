"""Jobs as the API sees them: submit (route, persist, enqueue), read, list, cancel and
wait — always the owner's. What happens to a job after it is written is the pipeline's
(pipeline/lifecycle.py)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from api import metrics, overhead
from api.relay import read_events
from api.services import conversations, routing, usage
from api.services.identity import Identity
from config.settings import get_settings
from core.db import db
from core.errors import AnswerTimeout, Conflict, GenerationFailed, NotFound
from core.models import Conversation, Job, Message
from core.repositories import conversations as conversations_repo
from core.repositories import jobs as jobs_repo
from core.repositories import messages as messages_repo
from core.repositories.pagination import Page
from core.statuses import JobStatus
from pipeline import generations, lifecycle
from pipeline.events import EventName

log = logging.getLogger(__name__)


CACHE_MODES = ("use", "refresh", "off")


@dataclass(frozen=True)
class JobRequest:
    # The user's text: what routing reads, and what /api stores in the conversation.
    message: str
    conversation_id: uuid.UUID | None = None
    model: str | None = None
    # The gateway's own web search (server-side: the worker runs it).
    tools: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    idempotency_key: str | None = None
    # The whole conversation as the client sent it (the OpenAI-compatible API), ending
    # with its user message or tool results: nothing is read from or kept in a
    # conversation. Messages are OpenAI's, normalized by api/schemas/openai_compat.py.
    turns: tuple[dict[str, Any], ...] | None = None
    # OpenAI's further output-shaping options (sampling, stop, seed, logprobs,
    # response_format, the client's tools and tool_choice), as the schema loaded them.
    options: Mapping[str, Any] = field(default_factory=dict)
    # The Responses API's own fields (instructions, tools as given, text format,
    # background...): kept with the job so that GET /v1/responses/{id} can show them.
    response: Mapping[str, Any] | None = None
    # use: answer from the cache or share an identical generation in progress;
    # refresh: generate anew and store the result (Cache-Control: no-cache);
    # off: neither read nor write the cache (Cache-Control: no-store).
    cache: str = "use"

    def model_turns(self, history: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
        """The messages the model gets (before the system prompt), after `history`."""
        if self.turns is not None:
            return [dict(turn) for turn in self.turns]
        return [*history, {"role": "user", "content": self.message}]

    @property
    def has_images(self) -> bool:
        return any(isinstance(turn.get("content"), list) for turn in self.turns or ())


def submit(identity: Identity, request: JobRequest) -> tuple[Job, bool]:
    """Create a job and enqueue it, or answer it from the cache; (job, created).

    The same idempotency key returns the same job.
    """
    user_id = identity.user_id
    if request.idempotency_key:
        existing = jobs_repo.get_by_idempotency_key(user_id, request.idempotency_key)
        if existing is not None:
            return existing, False

    conversation, history = _conversation_and_history(user_id, request)
    messages = request.model_turns(history)
    # Routing may refuse the model (422) before anything is written.
    decision = route(request, messages)
    metrics.tag_request(tier=decision.tier)
    params = generation_params(request)
    cache_key, answer = generations.look_up(
        request.cache, decision.model, messages, params, user_id
    )
    if answer is None:  # a cached answer costs the model servers nothing: no job quota
        usage.check_submission_allowed(user_id)

    # Everything below is written in the commit's one flush (ids are known on creation),
    # and a cached answer's job is inserted finished rather than inserted and updated.
    conversation, user_message = _add_user_message(identity, request, conversation)
    job = new_job(
        identity,
        decision,
        messages,
        params,
        response=request.response,
        conversation_id=conversation.id if conversation else None,
        idempotency_key=request.idempotency_key,
        user_message_id=user_message.id if user_message else None,
        cache_key=cache_key,
    )
    if answer is not None:
        generations.answer_from_cache(job, answer, conversation)
    winner = _commit_new(job, user_id, request.idempotency_key)
    if winner is not job:
        return winner, False
    lifecycle.start(job, answer, share=request.cache == "use")
    overhead.submitted(cached=answer is not None)
    return job, True


def _conversation_and_history(
    user_id: uuid.UUID, request: JobRequest
) -> tuple[Conversation | None, list[dict[str, Any]]]:
    """The conversation the request continues (404 if not the caller's) and the context
    the model gets from it."""
    if request.conversation_id is None:
        return None, []
    conversation = conversations.get(user_id, request.conversation_id)
    budget = get_settings().models.context_budget_chars
    return conversation, conversations.context(conversation.id, budget)


def _add_user_message(
    identity: Identity, request: JobRequest, conversation: Conversation | None
) -> tuple[Conversation | None, Message | None]:
    """Keep the user's message in its conversation (a new one when none was named); the
    OpenAI-compatible API's requests carry their whole conversation and keep none."""
    if request.turns is not None:
        return conversation, None
    if conversation is None:
        conversations.check_room(identity.user)
        conversation = conversations_repo.add(
            Conversation(user_id=identity.user_id, title=conversations.title_from(request.message))
        )
    user_message = messages_repo.add(
        Message(conversation_id=conversation.id, role="user", content=request.message)
    )
    conversation.updated_at = user_message.created_at
    return conversation, user_message


def _commit_new(job: Job, user_id: uuid.UUID, idempotency_key: str | None) -> Job:
    """Write the new job (and what came with it); the job that holds its idempotency key
    when a parallel request with the same key got there first."""
    try:
        jobs_repo.add(job)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        existing = jobs_repo.get_by_idempotency_key(user_id, idempotency_key or "")
        if existing is None:
            raise
        return existing
    return job


def route(request: JobRequest, messages: Sequence[Mapping[str, Any]]) -> routing.Decision:
    """The tier and model of a request whose model input is `messages`."""
    return routing.choose(
        request.model, request.message, messages[:-1], needs_vision=request.has_images
    )


def generation_params(request: JobRequest) -> dict[str, Any]:
    """Every parameter that shapes the answer (and so the cache key)."""
    return {
        "tools": request.tools,
        "max_tokens": request.max_tokens or get_settings().models.default_max_tokens,
        "temperature": request.temperature,
        **{name: value for name, value in request.options.items() if value is not None},
    }


def new_job(
    identity: Identity,
    decision: routing.Decision,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    response: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Job:
    """A queued job for `messages`, routed by `decision` (not yet added to the session)."""
    job_input: dict[str, Any] = {"messages": messages, "params": params}
    if response is not None:
        job_input["response"] = dict(response)
    return Job(
        user_id=identity.user_id,
        api_key_id=identity.api_key_id,
        status=JobStatus.QUEUED,
        tier=decision.tier,
        model=decision.model,
        route_score=decision.score,
        route_reason=decision.reason,
        input=job_input,
        **fields,
    )


def get(user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    job = jobs_repo.get_for_user(user_id, job_id)
    if job is None:
        raise NotFound("Job not found.")
    return job


def list_page(user_id: uuid.UUID, page: int, page_size: int, status: str | None) -> Page:
    return jobs_repo.list_page_for_user(user_id, page, page_size, status=status)


def cancel(user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """Cancel a job: a queued one never runs, a running one stops within a second."""
    job = get(user_id, job_id)
    if job.is_terminal:
        raise Conflict(f"The job has already ended ({job.status}).")
    lifecycle.cancel(job)
    return job


def wait_until_ended(job: Job) -> None:
    """Follow the job's stream until its terminal event; 504 past CHAT_WAIT_SECONDS."""
    settings = get_settings()
    deadline = time.monotonic() + settings.streaming.chat_wait_seconds
    db.session.close()  # no connection held while waiting
    events = read_events(str(job.id), wait=1.0)
    for event in events:
        if event is not None and event.name == EventName.START:
            overhead.started(event.data)
        if event is not None and event.is_terminal:
            return
        if time.monotonic() >= deadline:
            raise AnswerTimeout(
                "No answer within the wait; the job goes on: poll or follow it.",
                details={"job_id": str(job.id), "links": {"self": f"/api/jobs/{job.id}"}},
            )
        if event is None and get(job.user_id, job.id).is_terminal:
            return  # ended without a stream (e.g. it could not be enqueued)


def wait_for_answer(job: Job) -> Job:
    """The job once it has succeeded; 504 past CHAT_WAIT_SECONDS, 502 if it did not succeed."""
    if not job.is_terminal:  # else it was answered from the cache: nothing to read again
        wait_until_ended(job)
        job = get(job.user_id, job.id)
    if job.status != JobStatus.SUCCEEDED:
        raise GenerationFailed(
            job.error_message or f"The job ended {job.status}.",
            code=job.error_code or f"job_{job.status}",
            details={"job_id": str(job.id), "status": job.status},
        )
    return job
