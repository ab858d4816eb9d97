"""One job's life on a worker: claim, stream tokens to Redis, persist the outcome."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import redis
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from config.settings import get_settings
from core.db import db
from core.models import Job
from core.models.base import utcnow
from core.redis import redis_store
from core.repositories import jobs as jobs_repo
from core.statuses import TERMINAL_STATUSES, JobStatus
from pipeline import events, generations, lifecycle, outcomes
from pipeline.prompts import model_messages
from pipeline.streams import EventWriter, cancel_key, lock_key, writer_for
from worker import providers
from worker.agent.errors import JobCancelled, JobTimedOut, model_error
from worker.agent.graph import AgentResult, AgentRun, run_agent
from worker.agent.structured import check_structured_output
from worker.agent.tools import web_search_tool
from worker.stopping import StopScope, StopWatcher

log = logging.getLogger(__name__)


class JobBusy(Exception):
    """Another live worker holds the job's lock (it was delivered twice)."""


class JobLock:
    """A Redis lock that its holder keeps renewing, so it lapses soon after a crash."""

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
    # Renewed while held, and taken again if Redis lost it (a restart without persistence):
    # the reconciler reads a missing lock as a dead worker.
    _RENEW = (
        "local holder = redis.call('get', KEYS[1]) "
        "if holder == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end "
        "if not holder then return redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) end"
    )

    def __init__(self, client: redis.Redis, key: str, ttl: int):
        self._client, self._key, self._ttl = client, key, ttl
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()

    def acquire(self) -> bool:
        if not self._client.set(self._key, self._token, nx=True, ex=self._ttl):
            return False
        threading.Thread(target=self._renew, daemon=True, name="job-lock").start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            try:
                self._client.eval(self._RENEW, 1, self._key, self._token, self._ttl)
            except redis.RedisError as exc:
                log.warning("job lock renewal failed: %s", exc.__class__.__name__)

    def release(self) -> None:
        self._stop.set()
        try:
            self._client.eval(self._RELEASE, 1, self._key, self._token)
        except redis.RedisError as exc:
            log.warning("job lock release failed: %s", exc.__class__.__name__)


class JobHooks:
    """Receives the agent's tokens and tool activity; publishes them and checks for stops."""

    def __init__(self, writer: EventWriter, scope: StopScope, job: Job):
        self._writer, self._scope = writer, scope
        self._job = job
        self._claimed = time.perf_counter()
        # The gateway's stages before the model request (api/overhead.py), once known.
        self.overhead: dict[str, float] | None = None
        self.begun = False
        self.parts: list[str] = []
        # Each part's token log probabilities, when the model server sends them.
        self.part_logprobs: list[list[dict[str, Any]]] = []
        self.first_token_at: datetime | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def begin(self, job: Job | None = None) -> None:
        """Announce the start, right before the model request: with the time the job
        waited in the queue and the worker's own set-up (none when it never got there)."""
        if job is not None:
            self.overhead = {
                "queue": job.queue_wait_ms or 0.0,
                "setup": (time.perf_counter() - self._claimed) * 1000,
            }
        self.begun = True
        self._writer.emit(self._start())

    def _start(self) -> events.Draft:
        job, overhead = self._job, self.overhead
        rounded = {k: round(v, 2) for k, v in overhead.items()} if overhead else None
        return events.start(job.id, job.model, job.tier, attempt=job.attempts, overhead_ms=rounded)

    def check(self) -> None:
        """Raise JobStopped once the job was cancelled or ran out of time (the process's
        StopWatcher reads the flags; this costs no round trip)."""
        if time.monotonic() >= self._scope.deadline:
            self._scope.stop(JobTimedOut)
        self._scope.raise_if_stopped()

    @property
    def chunks(self) -> generations.Chunks:
        logprobs = self.part_logprobs if any(self.part_logprobs) else None
        return generations.Chunks(self.parts, logprobs)

    @property
    def logprobs(self) -> list[dict[str, Any]] | None:
        return [entry for entries in self.part_logprobs for entry in entries] or None

    def token(self, text: str, logprobs: list[dict[str, Any]] | None = None) -> None:
        self.check()
        if self.first_token_at is None:
            self.first_token_at = utcnow()
        self.parts.append(text)
        self.part_logprobs.append(logprobs or [])
        if self._writer.emit(events.token(text, logprobs), only_if_exists=True) is None:
            # Redis lost the stream (a restart without persistence): write it again whole,
            # so late readers get the answer from its start and live ones start over.
            lost = events.reset("the event stream was lost and rebuilt")
            self._writer.emit_many([lost, self._start(), events.token(self.text)])

    def tool_call(self, name: str, arguments: dict[str, Any]) -> None:
        self.check()
        self._writer.emit(events.tool_call(name, arguments))

    def tool_result(self, name: str, content: str) -> None:
        self._writer.emit(events.tool_result(name, content))


def _arguments(text: str) -> dict[str, Any]:
    """A tool call's JSON arguments as LangChain keeps them (a dict)."""
    try:
        arguments = json.loads(text)
    except ValueError:
        arguments = None
    return arguments if isinstance(arguments, dict) else {"arguments": text}


def _message(turn: dict[str, Any]) -> BaseMessage:
    """One stored message (api/chat_messages.py) as a LangChain message."""
    role, content = turn["role"], turn["content"]
    if role == "system":
        return SystemMessage(content=content)
    if role == "user":
        return HumanMessage(content=content)  # text, or OpenAI's text and image_url parts
    if role == "tool":
        return ToolMessage(content=content, tool_call_id=turn["tool_call_id"])
    calls = [
        {
            "id": call["id"],
            "name": call["function"]["name"],
            "args": _arguments(call["function"]["arguments"]),
        }
        for call in turn.get("tool_calls") or ()
    ]
    return AIMessage(content=content, tool_calls=calls)


def generate(job: Job, hooks: JobHooks) -> AgentResult:
    settings = get_settings()
    params = job.input.get("params", {})
    model = providers.chat_model(settings.models, job.model, params)
    tools = (
        [web_search_tool(settings, redis_store.client, stop_check=hooks.check)]
        if params.get("tools", True)
        else []
    )
    run = AgentRun(
        model=model,
        hooks=hooks,
        max_tool_rounds=settings.models.agent_max_tool_rounds,
        connect_retry_seconds=settings.models.llm_connect_retry_seconds,
        tools=tools,
        client_model=providers.with_client_tools(settings.models, model, params),
    )
    messages = [_message(turn) for turn in model_messages(job.input["messages"])]
    hooks.begin(job)
    result = run_agent(run, messages)
    if result.tool_calls is None:
        check_structured_output(params.get("response_format"), hooks.text)
    return result


def _finish(
    job: Job, status: JobStatus, hooks: JobHooks | None, event: events.Draft, **fields: Any
) -> None:
    if hooks is not None:
        if not hooks.begun:  # it ended before its model was asked: start, then the end
            hooks.begin()
        fields = {
            "first_token_at": hooks.first_token_at,
            "output": hooks.text or None,
            "logprobs": hooks.logprobs,
            "chunks": hooks.chunks,
            **fields,
        }
    overhead = hooks.overhead if hooks is not None else None
    lifecycle.finish(job, status, event=event, overhead=overhead, **fields)


def _record_answer(job: Job, result: AgentResult, hooks: JobHooks) -> None:
    db.session.add(job)
    message_id = outcomes.add_answer_message(
        job, hooks.text, result.prompt_tokens, result.completion_tokens
    )
    done = events.done(
        message_id=message_id,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        finish_reason=result.finish_reason,
        tool_calls=result.tool_calls,
    )
    _finish(
        job,
        JobStatus.SUCCEEDED,
        hooks,
        done,
        tool_calls=result.tool_calls,
        finish_reason=result.finish_reason,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        assistant_message_id=message_id,
    )


@functools.cache
def stop_watcher() -> StopWatcher:
    """The process's watcher of its running jobs (worker/stopping.py)."""
    return StopWatcher(redis_store.client)


def run_job(job_id: str, *, queue: str, hostname: str | None = None) -> None:
    """Run one delivery of a job. Raises JobBusy when another worker still holds it."""
    settings = get_settings()
    client, prefix = redis_store.client, settings.redis.key_prefix
    lock = JobLock(client, lock_key(prefix, job_id), settings.queue.lock_ttl)
    try:
        if not lock.acquire():
            status = jobs_repo.status_of(uuid.UUID(job_id))
            if status is None or status in TERMINAL_STATUSES:
                log.info("job %s skipped: %s", job_id, status or "unknown")
                return
            raise JobBusy(job_id)
        try:
            _run_locked(uuid.UUID(job_id), queue=queue, hostname=hostname)
        finally:
            lock.release()
    finally:
        db.session.remove()


def _run_locked(job_id: uuid.UUID, *, queue: str, hostname: str | None) -> None:
    settings = get_settings()
    job = lifecycle.claim(job_id)  # detached until lifecycle.finish: see there
    if job is None:  # unknown, or cancelled (or finished) before this delivery
        log.info("job %s skipped: it has ended or does not exist", job_id)
        return
    attempt = job.attempts
    writer = writer_for(job.id)
    log.info(
        "job %s attempt %s on queue %s",
        job.id,
        attempt,
        queue,
        extra={"job_id": str(job.id), "queue": queue, "worker": hostname, "tier": job.tier},
    )
    if attempt > settings.queue.max_attempts:
        _fail(job, None, "too_many_attempts", "The job was interrupted too many times.")
        return
    if attempt > 1:
        writer.emit(events.reset("the job started over", attempt=attempt))
    deadline = time.monotonic() + settings.queue.soft_time_limit
    cancel_flag = cancel_key(settings.redis.key_prefix, str(job.id))
    scope = StopScope(str(job.id), cancel_flag, deadline)
    hooks = JobHooks(writer, scope, job)
    try:
        if redis_store.client.exists(cancel_flag):  # cancelled while it waited for a worker
            scope.stop(JobCancelled)
        with stop_watcher().watching(scope):
            hooks.check()
            result = generate(job, hooks)
    except JobCancelled:
        cancelled = events.cancelled(job.id, partial=bool(hooks.text))
        _finish(job, JobStatus.CANCELLED, hooks, cancelled)
    except JobTimedOut:
        limit = settings.queue.soft_time_limit
        _fail(job, hooks, "time_limit_exceeded", f"The job ran past its {limit} s limit.")
    except Exception as exc:
        error = model_error(exc, job.model)
        if error.code == "internal_error":
            log.exception("job %s failed", job.id)
        _fail(job, hooks, error.code, error.message)
    else:
        _record_answer(job, result, hooks)


def _fail(job: Job, hooks: JobHooks | None, code: str, message: str) -> None:
    db.session.rollback()
    error = events.error(code, message)
    _finish(job, JobStatus.FAILED, hooks, error, error_code=code, error_message=message)
    log.warning("job %s failed: %s", job.id, code)
