"""Relays a job's Redis stream to a client as Server-Sent Events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from flask import Response, stream_with_context

from api import overhead, stream_leases
from api.relay import read_events
from config.settings import get_settings
from core.db import db
from core.models import Job
from core.redis import redis_store
from core.repositories import jobs as jobs_repo
from core.statuses import JobStatus
from pipeline import events
from pipeline.events import Event, EventName
from pipeline.streams import stream_exists

HEARTBEAT = ": ping\n\n"
# Synthesized events (the stream has expired) use ids "0-N": below any real entry id.
SYNTHETIC_PREFIX = "0-"


def synthesize(job: Job) -> list[Event]:
    """A finished job's events rebuilt from PostgreSQL, for a stream that has expired."""
    drafts = []
    # As live: a job that ended before any worker took it (cancelled or failed while
    # queued) never had a `start`; a cached answer says so, as its live stream did.
    if job.started_at is not None:
        drafts.append(events.start(job.id, job.model, job.tier, cached=job.cached))
    if job.output:
        drafts.append(events.token(job.output))
    if job.status == JobStatus.SUCCEEDED:
        drafts.append(events.done_of(job))
    elif job.status == JobStatus.FAILED:
        drafts.append(events.error(job.error_code, job.error_message))
    else:
        drafts.append(events.cancelled(job.id, partial=bool(job.output)))
    return [Event.of(f"{SYNTHETIC_PREFIX}{n}", draft) for n, draft in enumerate(drafts, 1)]


def _replay(job: Job, after: str | None) -> Iterator[Event]:
    if after and after.startswith(SYNTHETIC_PREFIX):
        seen = int(after.removeprefix(SYNTHETIC_PREFIX) or 0)
        yield from (e for e in synthesize(job) if int(e.id.removeprefix(SYNTHETIC_PREFIX)) > seen)
        return
    if after:  # the client saw part of a stream that no longer exists: start over
        yield Event.of(f"{SYNTHETIC_PREFIX}0", events.reset("stream expired"))
    yield from synthesize(job)


def _ended_job(job_id: uuid.UUID) -> Job | None:
    """The job when it has ended and its stream does not exist; the session is released."""
    try:
        job = jobs_repo.get(job_id)
        return job if job is not None and job.is_terminal else None
    finally:
        db.session.close()


def job_events(
    job_id: uuid.UUID, after: str | None, *, fresh: bool = False
) -> Iterator[Event | None]:
    """A job's events from `after` (a Last-Event-ID) to its terminal event.

    Yields None whenever SSE_HEARTBEAT_SECONDS pass with nothing new, so the caller can
    send a heartbeat. A job whose stream has expired is replayed from PostgreSQL. A
    `fresh` job, created by this very request, has no stream to have lost yet: it is
    followed at once, without asking Redis and PostgreSQL whether it has ended.
    """
    settings = get_settings()
    client, prefix = redis_store.client, settings.redis.key_prefix
    if not fresh and not stream_exists(client, prefix, str(job_id)):
        ended = _ended_job(job_id)
        if ended is not None:
            yield from _replay(ended, after)
            return
    start = after if after and not after.startswith(SYNTHETIC_PREFIX) else "0-0"
    wait = settings.streaming.sse_heartbeat_seconds
    relayed_a_token = False
    for event in read_events(str(job_id), after=start, wait=wait):
        yield event
        if event is not None:
            if not relayed_a_token and event.name == EventName.TOKEN:
                relayed_a_token = True
                overhead.relayed(event)  # the client has the first token now
            continue
        # A job that ended without a stream (e.g. never enqueued, or the stream expired
        # while we waited) would otherwise keep this connection open forever.
        if not stream_exists(client, prefix, str(job_id)):
            ended = _ended_job(job_id)
            if ended is not None:
                yield from _replay(ended, after)
                return


def answer_events(
    job_id: uuid.UUID, after: str | None = None, *, fresh: bool = False
) -> Iterator[Event | None]:
    """job_events for a response about to start: a new reader's events up to the job's
    `start` are read first, so that the response's headers carry the gateway's overhead
    (api/overhead.py). A reader resuming after an event has seen the start already.

    The caller's stream slot is taken first: a client at its cap is refused before any
    event is read."""
    stream_leases.reserve()
    events = job_events(job_id, after, fresh=fresh)
    return events if after else overhead.until_start(events)


def frames(events: Iterator[Event | None]) -> Iterator[str]:
    """SSE text for a job's events, with heartbeats for the silences."""
    yield "retry: 2000\n\n"
    for event in events:
        yield HEARTBEAT if event is None else event.to_sse()


def event_stream(body: Iterator[str], headers: dict | None = None) -> Response:
    """A text/event-stream response that proxies pass on unbuffered; it holds one of the
    caller's stream slots (api/stream_leases.py) until it is closed."""
    stream_leases.reserve()  # before the body exists: a refusal is a plain JSON 429
    # Release the request's database connection: a stream may stay open for minutes.
    db.session.close()
    response = Response(
        stream_with_context(body),
        mimetype="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            **(headers or {}),
        },
    )
    stream_leases.hand_over(response)
    return response


def response(
    job_id: uuid.UUID, after: str | None, *, fresh: bool = False, headers: dict | None = None
) -> Response:
    """A job's events from `after` (a Last-Event-ID) to its terminal event, as SSE;
    `fresh`: the job was created by this request (see job_events)."""
    return event_stream(frames(answer_events(job_id, after, fresh=fresh)), headers)
