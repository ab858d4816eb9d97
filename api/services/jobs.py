"""Jobs: submit (route, persist, enqueue), read, list and cancel — always the owner's."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy.exc import IntegrityError

from api import metrics, overhead, queue
from api.extensions import db, redis_store
from api.models import Conversation, Job, Message
from api.models.base import utcnow
from api.relay import read_events
from api.repositories import conversations as conversations_repo
from api.repositories import jobs as jobs_repo
from api.repositories import messages as messages_repo
from api.repositories.pagination import Page
from api.security import Identity
from api.services import batch_progress, conversations, response_cache, routing, usage
from api.services.errors import (
    AnswerTimeout,
    Conflict,
    GenerationFailed,
    NotFound,
    QueueUnavailable,
)
from api.streams import EventWriter, cancel_key, enqueued_key

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


def event_writer(job_id: uuid.UUID) -> EventWriter:
    config = current_app.config
    return EventWriter(
        redis_store.client,
        config["REDIS_KEY_PREFIX"],
        str(job_id),
        maxlen=config["STREAM_MAXLEN"],
        ttl=config["STREAM_TTL_SECONDS"],
    )


def submit(identity: Identity, request: JobRequest) -> tuple[Job, bool]:
    """Create a job and enqueue it, or answer it from the cache; (job, created).

    The same idempotency key returns the same job.
    """
    user_id = identity.user_id
    if request.idempotency_key:
        existing = jobs_repo.get_by_idempotency_key(user_id, request.idempotency_key)
        if existing is not None:
            return existing, False

    conversation: Conversation | None = None
    keeps_conversation = request.turns is None
    history: list[dict[str, Any]] = []
    if request.conversation_id is not None:
        conversation = conversations.get(user_id, request.conversation_id)
        history = conversations.context(conversation.id, current_app.config["CONTEXT_BUDGET_CHARS"])
    messages = request.model_turns(history)
    # Routing may refuse the model (422) before anything is written.
    decision = route(request, messages)
    metrics.tag_request(tier=decision.tier)

    params = generation_params(request)
    cache_key = None
    if request.cache != "off" and response_cache.enabled():
        cache_key = response_cache.key_for(decision.model, messages, params, user_id)
    answer = response_cache.lookup(cache_key) if cache_key and request.cache == "use" else None
    if answer is None:  # a cached answer costs the model servers nothing: no job quota
        usage.check_submission_allowed(user_id)

    # Everything below is written in the commit's one flush (ids are known on creation),
    # and a cached answer's job is inserted finished rather than inserted and updated.
    user_message = None
    if keeps_conversation:
        if conversation is None:
            conversations.check_room(identity.user)
            conversation = conversations_repo.add(
                Conversation(user_id=user_id, title=conversations.title_from(request.message))
            )
        user_message = messages_repo.add(
            Message(conversation_id=conversation.id, role="user", content=request.message)
        )
        conversation.updated_at = user_message.created_at
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
        _answer_from_cache(job, answer, conversation)
    try:
        jobs_repo.add(job)
        db.session.commit()
    except IntegrityError:
        # The same idempotency key raced in from a parallel request: that one wins.
        db.session.rollback()
        existing = jobs_repo.get_by_idempotency_key(user_id, request.idempotency_key or "")
        if existing is None:
            raise
        return existing, False

    leader_id = None
    if answer is None and cache_key and request.cache == "use":
        leader_id = response_cache.join_flight(cache_key, job.id)
    if answer is not None:  # nothing to enqueue: the answer is already there
        _publish_cached(job, answer)
    elif leader_id is not None:
        _follow(job, leader_id)
    else:
        _enqueue(job)
    overhead.submitted(cached=answer is not None)
    return job, True


def route(request: JobRequest, messages: Sequence[Mapping[str, Any]]) -> routing.Decision:
    """The tier and model of a request whose model input is `messages`."""
    return routing.choose(
        request.model, request.message, messages[:-1], needs_vision=request.has_images
    )


def generation_params(request: JobRequest) -> dict[str, Any]:
    """Every parameter that shapes the answer (and so the cache key)."""
    return {
        "tools": request.tools,
        "max_tokens": request.max_tokens or current_app.config["DEFAULT_MAX_TOKENS"],
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
        status="queued",
        tier=decision.tier,
        model=decision.model,
        route_score=decision.score,
        route_reason=decision.reason,
        input=job_input,
        **fields,
    )


def _enqueue(job: Job) -> None:
    try:
        queue.enqueue_job(job.id, job.tier)
    except Exception as exc:
        log.error("enqueue failed for job %s: %s", job.id, exc.__class__.__name__)
        finish(
            job,
            "failed",
            error_code="queue_unavailable",
            error_message="The job queue is unavailable.",
        )
        raise QueueUnavailable("The job queue is unavailable; retry shortly.") from exc


def _answer_from_cache(
    job: Job, answer: response_cache.CachedAnswer, conversation: Conversation | None = None
) -> None:
    """Complete a queued job with a cached (or shared) answer; the caller commits.

    `conversation` is the job's conversation when the caller has it at hand (it may be
    new, not yet written).
    """
    now = utcnow()
    job.status = "succeeded"
    job.cached = True
    job.output = answer.text
    job.tool_calls = answer.tool_calls
    job.logprobs = answer.logprobs
    job.finish_reason = answer.finish_reason
    job.prompt_tokens = answer.prompt_tokens
    job.completion_tokens = answer.completion_tokens
    job.started_at = job.first_token_at = job.finished_at = now
    job.assistant_message_id = add_answer_message(
        job, answer.text, answer.prompt_tokens, answer.completion_tokens, conversation
    )
    usage.record_job(job)


def add_answer_message(
    job: Job,
    text: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    conversation: Conversation | None = None,
) -> uuid.UUID | None:
    """Store the answer in the job's conversation, if it still exists; the message id."""
    if job.conversation_id is None:
        return None
    if conversation is None:
        conversation = db.session.get(Conversation, job.conversation_id)
    if conversation is None:
        return None
    message = messages_repo.add(
        Message(
            conversation_id=conversation.id,
            role="assistant",
            content=text,
            model=job.model,
            tier=job.tier,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
    )
    conversation.updated_at = message.created_at
    return message.id


def _publish_cached(job: Job, answer: response_cache.CachedAnswer) -> None:
    """Write a cached answer to the job's stream as its events, so SSE clients replay it."""
    usage_figures = {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
    }
    message_id = str(job.assistant_message_id) if job.assistant_message_id else None
    start = {"job_id": str(job.id), "model": job.model, "tier": job.tier, "cached": True}
    done = {"message_id": message_id, "usage": usage_figures, "finish_reason": job.finish_reason}
    if answer.tool_calls:
        done["tool_calls"] = answer.tool_calls
    tokens = [
        ("token", token_data(chunk, logprobs))
        for chunk, logprobs in zip(
            answer.chunks, answer.chunk_logprobs or [None] * len(answer.chunks), strict=True
        )
        if chunk
    ]
    event_writer(job.id).emit_many([("start", start), *tokens, ("done", {**done, "cached": True})])
    metrics.record_job(job)


def _follow(job: Job, leader_id: uuid.UUID) -> None:
    """Make `job` wait for the identical job generating now; settle it if that one has ended."""
    job.leader_job_id = leader_id
    db.session.commit()
    leader = jobs_repo.get(leader_id)
    if leader is None or leader.is_terminal:
        # The leader ended before this job was attached: it could not have seen it.
        answer = None
        if leader is not None and leader.status == "succeeded" and job.cache_key:
            answer = response_cache.lookup(job.cache_key)
        _settle_follower(job.id, leader_id, answer)
        db.session.refresh(job)


def _settle_follower(
    job_id: uuid.UUID, leader_id: uuid.UUID, answer: response_cache.CachedAnswer | None
) -> None:
    """Answer a follower with its leader's result, or, when there is none, enqueue it.

    Both the leader's worker and the follower's own request may get here; the row lock
    lets exactly one of them act.
    """
    follower = jobs_repo.lock_waiting_follower(job_id, leader_id)
    if follower is None:
        db.session.rollback()  # cancelled, or settled by the other side
        return
    if answer is None:
        follower.leader_job_id = None
        db.session.commit()
        # If the queue is down the follower is failed with queue_unavailable, as any job.
        with contextlib.suppress(QueueUnavailable):
            _enqueue(follower)
        return
    _answer_from_cache(follower, answer)
    db.session.commit()
    _publish_cached(follower, answer)


def token_data(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A `token` event's data: the text, and its log probabilities when asked for."""
    return {"text": text} if logprobs is None else {"text": text, "logprobs": logprobs}


@dataclass(frozen=True)
class Chunks:
    """An answer's pieces as streamed, kept in the cache for replay."""

    texts: list[str]
    logprobs: list[list[dict[str, Any]]] | None = None


def finish(
    job: Job,
    status: str,
    *,
    event: tuple[str, dict[str, Any]] | None = None,
    chunks: Chunks | None = None,
    overhead: dict[str, float] | None = None,
    **fields: Any,
) -> None:
    """End a job with `status` and its usage row, in one commit (API and worker alike).

    `event` is the job's terminal event for its stream; `chunks` are the answer's tokens
    as streamed, kept in the cache for replay; `overhead` the worker's stages of
    api/overhead.py, for the metrics.
    """
    job.status = status
    job.finished_at = utcnow()
    for name, value in fields.items():
        setattr(job, name, value)
    usage.record_job(job)
    db.session.commit()
    _after_end(job, event, chunks, overhead)


def _after_end(
    job: Job,
    event: tuple[str, dict[str, Any]] | None,
    chunks: Chunks | None = None,
    overhead: dict[str, float] | None = None,
) -> None:
    """Once a job's end is committed: cache its answer, announce the end, settle followers.

    The answer is cached before the terminal event goes out, so a client that sees the
    end and asks again finds it in the cache.
    """
    leads = job.cache_key is not None and job.leader_job_id is None
    answer = None
    if leads and job.status == "succeeded":
        answer = response_cache.CachedAnswer(
            chunks=list(chunks.texts) if chunks is not None else [job.output or ""],
            finish_reason=job.finish_reason,
            prompt_tokens=job.prompt_tokens or 0,
            completion_tokens=job.completion_tokens or 0,
            source_job_id=str(job.id),
            tool_calls=job.tool_calls,
            chunk_logprobs=chunks.logprobs if chunks is not None else None,
        )
        response_cache.store(job.cache_key, answer)
    if event is not None:
        event_writer(job.id).emit(*event)
    redis_store.client.delete(enqueued_key(current_app.config["REDIS_KEY_PREFIX"], str(job.id)))
    metrics.record_job(job, overhead)
    if job.batch_id is not None:
        batch_progress.settle(job.batch_id)
    if leads:
        response_cache.end_flight(job.cache_key, job.id)
        for follower_id in jobs_repo.waiting_follower_ids(job.id):
            _settle_follower(follower_id, job.id, answer)


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
    config = current_app.config
    # The worker polls this flag between tokens.
    redis_store.client.set(
        cancel_key(config["REDIS_KEY_PREFIX"], str(job.id)), "1", ex=config["JOB_TIME_LIMIT"] * 2
    )
    if jobs_repo.cancel_if_queued(job.id, utcnow()):
        db.session.refresh(job)
        usage.record_job(job)
        db.session.commit()
        _after_end(job, ("cancelled", {"job_id": str(job.id), "partial": False}))
    db.session.refresh(job)
    return job


def wait_until_ended(job: Job) -> None:
    """Follow the job's stream until its terminal event; 504 past CHAT_WAIT_SECONDS."""
    config = current_app.config
    deadline = time.monotonic() + config["CHAT_WAIT_SECONDS"]
    db.session.close()  # no connection held while waiting
    events = read_events(str(job.id), wait=1.0)
    for event in events:
        if event is not None and event.name == "start":
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
    if job.status != "succeeded":
        raise GenerationFailed(
            job.error_message or f"The job ended {job.status}.",
            code=job.error_code or f"job_{job.status}",
            details={"job_id": str(job.id), "status": job.status},
        )
    return job
