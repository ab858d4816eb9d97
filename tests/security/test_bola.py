"""Broken object level authorization: another user's ids, through every route that takes one.

Alice owns a conversation, a job, an API key and a batch, each carrying a unique secret
marker. Bob, authenticated by each of the gateway's methods (an access JWT, an API key in
`X-API-Key`, an API key as a Bearer token), sends Alice's real ids to every route that takes
an id in its path (and every request body field that references an object). Each answer
must be the 404 of an id that does not exist, in the gateway's error shape, with none of
Alice's data in it; and Alice's object must be exactly as it was.

The matrix is checked against the app's URL map and OpenAPI spec, so a route (or body field)
taking an id that is added later fails here until it is put in the matrix.

No worker runs: Alice's jobs stay queued, or the test plays the worker's part (claim, emit,
finish) through the same calls a worker makes.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from core.db import db
from core.models import Job
from core.models.base import utcnow
from core.repositories import jobs as jobs_repo
from pipeline import events
from pipeline.events import Draft, EventName
from pipeline.streams import cancel_key, writer_for
from tests.conftest import Account, register_and_login
from tests.helpers import bearer, error_of
from tests.security.conftest import answer_job

# Alice's jobs are left queued: a worker of a later integration test must not find them.
pytestmark = pytest.mark.usefixtures("clean_after")

NO_CACHE = {"Cache-Control": "no-store"}  # no response-cache link between the two users
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
UUID_SHAPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# --- how Bob authenticates ------------------------------------------------------------------

AUTH_METHODS: dict[str, Callable[[Account], dict[str, str]]] = {
    "jwt": lambda account: bearer(account.access_token),
    "x_api_key": lambda account: {"X-API-Key": account.extra["api_key"]},
    "api_key_as_bearer": lambda account: bearer(account.extra["api_key"]),
}


def new_api_key(client, account: Account, name: str) -> dict:
    response = client.post("/api/user/api-keys", json={"name": name}, headers=account.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture
def owner(client) -> Account:
    """Alice: the owner of every object Bob goes after."""
    return register_and_login(client, "alice@example.com", name="Alice")


@pytest.fixture
def intruder(client) -> Account:
    """Bob: a plain user with a valid access token and a valid API key of his own."""
    account = register_and_login(client, "bob@example.com", name="Bob")
    account.extra["api_key"] = new_api_key(client, account, "bob's key")["key"]
    return account


# --- Alice's objects ------------------------------------------------------------------------


@dataclass
class Target:
    """One of Alice's objects: its id, how Alice sees it, and what must never leak."""

    id: str
    marker: str
    snapshot: Callable[[], Any]
    # Checks that the object still does what it did (after the snapshot comparison).
    still_works: Callable[[], None] = lambda: None
    known: Any = None  # the first snapshot, for the list of secrets
    secrets: set[str] = field(default_factory=set)


def ok_json(response, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, str):
        yield value


def finish_target(target: Target, owner: Account, *extra_secrets: str) -> Target:
    """Take the first snapshot and list the secrets: every id and marked text Alice sees."""
    target.known = target.snapshot()
    found = {s for s in strings_in(target.known) if target.marker in s}
    for text in strings_in(target.known):
        found.update(UUID_SHAPE.findall(text))
    found.update({target.marker, owner.id, owner.email, *extra_secrets})
    found.discard(target.id)  # Bob sent this one himself
    target.secrets = found
    return target


def submit_job(client, owner: Account, message: str, **fields) -> dict:
    response = client.post(
        "/api/jobs/", json={"message": message, **fields}, headers={**owner.headers, **NO_CACHE}
    )
    return ok_json(response, 202)


def play_worker_start(app, job_id: str, token_text: str) -> None:
    """What a worker does first: claim the job (queued → running), stream a token."""
    with app.app_context():
        assert jobs_repo.claim(uuid.UUID(job_id), utcnow()).attempts == 1
        db.session.commit()
        writer_for(uuid.UUID(job_id)).emit(Draft(EventName.START, {"job_id": job_id}))
        writer_for(uuid.UUID(job_id)).emit(events.token(token_text))


def play_worker_success(app, job_id: uuid.UUID, answer: str) -> None:
    """What a worker does for a job it answers: claim, store the answer message, finish."""
    with app.app_context():
        assert jobs_repo.claim(job_id, utcnow()).attempts == 1
        db.session.commit()
        answer_job(db.session.get(Job, job_id), answer, 5, 3)


def conversation_target(app, client, owner: Account, redis_client) -> Target:
    marker = f"alice-secret-{uuid.uuid4().hex}"
    created = client.post(
        "/api/conversations/", json={"title": f"{marker} title"}, headers=owner.headers
    )
    conversation_id = ok_json(created, 201)["id"]
    job = submit_job(client, owner, f"{marker} private message", conversation_id=conversation_id)

    def snapshot():
        return ok_json(client.get(f"/api/conversations/{conversation_id}", headers=owner.headers))

    target = Target(id=conversation_id, marker=marker, snapshot=snapshot)
    return finish_target(target, owner, job["id"])


def job_target(app, client, owner: Account, redis_client) -> Target:
    """A running job of Alice's, with a partial answer on its event stream."""
    marker = f"alice-secret-{uuid.uuid4().hex}"
    job = submit_job(client, owner, f"{marker} private question")
    play_worker_start(app, job["id"], f"{marker} partial answer")
    flag = cancel_key(app.config["REDIS_KEY_PREFIX"], job["id"])

    def snapshot():
        return {
            "job": ok_json(client.get(f"/api/jobs/{job['id']}", headers=owner.headers)),
            "conversation": ok_json(
                client.get(f"/api/conversations/{job['conversation_id']}", headers=owner.headers)
            ),
        }

    def still_works():
        # The worker stops a running job when this flag is set: nobody asked it to.
        assert not redis_client.exists(flag)
        assert snapshot()["job"]["status"] == "running"

    target = Target(id=job["id"], marker=marker, snapshot=snapshot, still_works=still_works)
    return finish_target(target, owner)


def api_key_target(app, client, owner: Account, redis_client) -> Target:
    marker = f"alice-secret-{uuid.uuid4().hex}"
    key = new_api_key(client, owner, f"{marker} key")

    def snapshot():
        return ok_json(client.get("/api/user/api-keys", headers=owner.headers))

    def still_works():
        me = client.get("/api/user/me", headers={"X-API-Key": key["key"]})
        assert ok_json(me)["id"] == owner.id

    target = Target(id=key["id"], marker=marker, snapshot=snapshot, still_works=still_works)
    return finish_target(target, owner, key["key"], key["prefix"])


def batch_target(app, client, owner: Account, redis_client) -> Target:
    """A batch of Alice's in progress: one request answered, one still queued."""
    marker = f"alice-secret-{uuid.uuid4().hex}"
    requests = [
        {"custom_id": f"{marker}-1", "message": f"{marker} first question"},
        {"custom_id": f"{marker}-2", "message": f"{marker} second question"},
    ]
    created = client.post("/api/batches/", json={"requests": requests}, headers=owner.headers)
    batch_id = ok_json(created, 202)["id"]
    with app.app_context():
        first = db.session.scalar(
            select(Job.id).where(
                Job.batch_id == uuid.UUID(batch_id), Job.custom_id == f"{marker}-1"
            )
        )
    play_worker_success(app, first, f"{marker} private answer")

    def snapshot():
        batch = ok_json(client.get(f"/api/batches/{batch_id}", headers=owner.headers))
        results = client.get(f"/api/batches/{batch_id}/results", headers=owner.headers)
        assert results.status_code == 200
        lines = [json.loads(line) for line in results.get_data(as_text=True).splitlines()]
        return {"batch": batch, "results": lines}

    target = Target(id=batch_id, marker=marker, snapshot=snapshot)
    target = finish_target(target, owner)
    assert target.known["batch"]["status"] == "in_progress"
    assert len(target.known["results"]) == 1  # the answer is there to be leaked
    return target


def response_target(app, client, owner: Account, redis_client) -> Target:
    """A background response of Alice's (OpenAI's Responses API), queued: no worker runs."""
    marker = f"alice-secret-{uuid.uuid4().hex}"
    body = {"model": "light", "input": f"{marker} private question", "background": True}
    created = client.post("/v1/responses", json=body, headers={**owner.headers, **NO_CACHE})
    response_id = ok_json(created)["id"]
    job_id = str(uuid.UUID(response_id.removeprefix("resp_")))
    flag = cancel_key(app.config["REDIS_KEY_PREFIX"], job_id)

    def snapshot():
        return {
            "response": ok_json(client.get(f"/v1/responses/{response_id}", headers=owner.headers)),
            "job": ok_json(client.get(f"/api/jobs/{job_id}", headers=owner.headers)),
        }

    def still_works():
        assert not redis_client.exists(flag)
        assert snapshot()["response"]["status"] == "queued"

    target = Target(id=response_id, marker=marker, snapshot=snapshot, still_works=still_works)
    return finish_target(target, owner, job_id)


def session_target(app, client, owner: Account, redis_client) -> Target:
    """A login session of Alice's, from a browser whose user agent carries the marker."""
    marker = f"alice-secret-{uuid.uuid4().hex}"
    login = client.post(
        "/api/auth/login",
        json={"email": owner.email, "password": owner.password},
        headers={"User-Agent": f"{marker} browser"},
    )
    session_token = ok_json(login)["access_token"]
    sessions = ok_json(client.get("/api/user/sessions", headers=bearer(session_token)))
    session_id = next(session["id"] for session in sessions if session["current"])

    def snapshot():
        return ok_json(client.get("/api/user/sessions", headers=owner.headers))

    def still_works():
        assert ok_json(client.get("/api/user/me", headers=bearer(session_token)))["id"] == owner.id

    target = Target(id=session_id, marker=marker, snapshot=snapshot, still_works=still_works)
    return finish_target(target, owner, session_token)


BUILDERS = {
    "conversation": conversation_target,
    "job": job_target,
    "api_key": api_key_target,
    "batch": batch_target,
    "response": response_target,
    "session": session_target,
}
# An id of each kind that names nothing.
UNKNOWN_IDS = {"response": lambda: f"resp_{uuid.uuid4().hex}"}


# --- the matrix -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    rule: str  # exactly as in app.url_map
    kind: str  # whose id goes in the path
    json: dict | None = None

    def url(self, object_id: str) -> str:
        return re.sub(r"<[^>]+>", str(object_id), self.rule)

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


CONVERSATION = "/api/conversations/<uuid:conversation_id>"
JOB = "/api/jobs/<uuid:job_id>"
BATCH = "/api/batches/<uuid:batch_id>"
RESPONSE = "/v1/responses/<string:response_id>"

ROUTES_WITH_IDS = [
    Route("GET", CONVERSATION, "conversation"),
    Route("PATCH", CONVERSATION, "conversation", {"title": "renamed by bob"}),
    Route("DELETE", CONVERSATION, "conversation"),
    Route("GET", JOB, "job"),
    Route("DELETE", JOB, "job"),  # cancel
    Route("GET", f"{JOB}/events", "job"),  # SSE
    Route("DELETE", "/api/user/api-keys/<uuid:key_id>", "api_key"),  # revoke
    Route("DELETE", "/api/user/sessions/<uuid:session_id>", "session"),  # log out
    Route("GET", BATCH, "batch"),
    Route("DELETE", BATCH, "batch"),
    Route("GET", f"{BATCH}/results", "batch"),
    Route("POST", f"{BATCH}/cancel", "batch"),
    Route("GET", RESPONSE, "response"),
    Route("POST", f"{RESPONSE}/cancel", "response"),
]

# Admin-only routes with an id: not BOLA targets (admins act on every account), but a
# plain user must get 403.
ADMIN_ROUTES_WITH_IDS = [
    Route("PATCH", "/api/admin/users/<uuid:user_id>", "user"),
    Route("DELETE", "/api/admin/users/<uuid:user_id>/sessions", "user"),
]

# Routes with a path argument that names no object of anyone's.
NOT_OBJECT_ROUTES = {("GET", "/docs/assets/<path:filename>")}  # Swagger UI's static files

# Request fields (from the OpenAPI spec) that reference another object by id.
BODY_REFERENCES = [
    ("POST", "/api/jobs/", "conversation_id"),
    ("POST", "/api/chat/", "conversation_id"),
    ("POST", "/api/chat/stream", "conversation_id"),
]


def refusal(response, sent_id: str) -> tuple[int, str]:
    """What a refusal says, the request id left out and the id the caller sent masked: an
    answer may repeat that id, so it is compared with the answer for a different one."""
    error = dict(response.get_json()["error"])
    error.pop("request_id", None)  # not in OpenAI's shape (under /v1)
    text = json.dumps(error, sort_keys=True)
    return response.status_code, re.sub(re.escape(sent_id), "<id>", text, flags=re.IGNORECASE)


def hidden_404(response, path: str = "") -> None:
    """The 404 error of a refused request; a stream answered instead fails at once rather
    than being read (the event stream of a job that never ends would hang the test)."""
    if response.status_code != 404:
        response.close()
        pytest.fail(f"expected 404, got {response.status_code} {response.mimetype}")
    if path.startswith("/v1/"):  # OpenAI's error shape
        error = response.get_json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert (error["code"], error["param"]) == ("not_found", None), error
        return
    assert "details" not in error_of(response, 404, "not_found")


def assert_leaks_nothing(response, target: Target) -> None:
    text = response.get_data(as_text=True)
    headers = " ".join(f"{name}: {value}" for name, value in response.headers.items())
    for secret in target.secrets:
        assert secret not in text, f"Alice's {secret!r} is in Bob's response: {text}"
        assert secret not in headers, f"Alice's {secret!r} is in Bob's headers: {headers}"


def test_every_route_with_an_id_is_in_the_matrix(app):
    found = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.arguments
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    listed = {(r.method, r.rule) for r in ROUTES_WITH_IDS + ADMIN_ROUTES_WITH_IDS}

    assert found - listed - NOT_OBJECT_ROUTES == set(), "id-taking routes missing from the matrix"
    assert listed - found == set(), "routes in the matrix that the app no longer has"


def _uuid_fields(spec: dict, schema: dict, path: str = "") -> Iterator[str]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    if schema.get("format") == "uuid":
        yield path
    for name, inner in (schema.get("properties") or {}).items():
        yield from _uuid_fields(spec, inner, f"{path}.{name}" if path else name)
    if "items" in schema:
        yield from _uuid_fields(spec, schema["items"], f"{path}[]")


def test_every_request_field_holding_an_id_is_in_the_matrix(client):
    spec = ok_json(client.get("/openapi.json"))
    found = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in HTTP_METHODS:  # e.g. the path's own "parameters"
                continue
            bodies = (operation.get("requestBody") or {}).get("content", {}).values()
            schemas = [body["schema"] for body in bodies if "schema" in body]
            schemas += [
                p["schema"] for p in operation.get("parameters", []) if p.get("in") == "query"
            ]
            for schema in schemas:
                found.update((method.upper(), path, f) for f in _uuid_fields(spec, schema))
    # Admin routes act on any account by design.
    found = {entry for entry in found if not entry[1].startswith("/api/admin/")}

    assert found == set(BODY_REFERENCES)


@pytest.mark.parametrize("auth", list(AUTH_METHODS))
@pytest.mark.parametrize("route", ROUTES_WITH_IDS, ids=str)
def test_another_users_id_in_the_path_is_a_404_that_changes_nothing(
    app, client, redis_client, owner, intruder, route, auth
):
    target = BUILDERS[route.kind](app, client, owner, redis_client)
    headers = AUTH_METHODS[auth](intruder)

    response = client.open(
        route.url(target.id), method=route.method, json=route.json, headers=headers
    )

    hidden_404(response, route.rule)
    assert_leaks_nothing(response, target)
    # Indistinguishable from an id that does not exist: nothing tells Bob it is real.
    unknown_id = UNKNOWN_IDS.get(route.kind, lambda: str(uuid.uuid4()))()
    missing = client.open(
        route.url(unknown_id), method=route.method, json=route.json, headers=headers
    )
    assert refusal(response, target.id) == refusal(missing, unknown_id)
    # Another spelling of the same id (upper case) reaches the same refusal.
    upper = client.open(
        route.url(target.id.upper()), method=route.method, json=route.json, headers=headers
    )
    assert refusal(upper, target.id) == refusal(missing, unknown_id)
    if route.method == "GET":  # HEAD runs the same view: no way around it either
        head = client.head(route.url(target.id), headers=headers)
        assert head.status_code == 404
        assert_leaks_nothing(head, target)
    # Alice's object is exactly as it was, and still does what it did.
    assert target.snapshot() == target.known
    target.still_works()


@pytest.mark.parametrize("auth", list(AUTH_METHODS))
@pytest.mark.parametrize(
    ("method", "path", "field_name"),
    BODY_REFERENCES,
    ids=[f"{m} {p}" for m, p, _ in BODY_REFERENCES],
)
def test_another_users_conversation_id_in_a_body_is_a_404_that_writes_nothing(
    app, client, redis_client, owner, intruder, method, path, field_name, auth
):
    target = conversation_target(app, client, owner, redis_client)
    headers = {**AUTH_METHODS[auth](intruder), **NO_CACHE}
    body = {"message": "What did we talk about before?", field_name: target.id}

    response = client.open(path, method=method, json=body, headers=headers)

    hidden_404(response)
    assert_leaks_nothing(response, target)
    unknown_id = str(uuid.uuid4())
    missing = client.open(
        path, method=method, json={**body, field_name: unknown_id}, headers=headers
    )
    assert refusal(response, target.id) == refusal(missing, unknown_id)
    # No message went into Alice's conversation, and Bob got no job or conversation.
    assert target.snapshot() == target.known
    assert ok_json(client.get("/api/jobs/", headers=intruder.headers))["total"] == 0
    assert ok_json(client.get("/api/conversations/", headers=intruder.headers))["total"] == 0


@pytest.mark.parametrize("auth", list(AUTH_METHODS))
@pytest.mark.parametrize(
    "path",
    [
        "/api/conversations/",
        "/api/jobs/",
        "/api/batches/",
        "/api/user/api-keys",
        "/api/user/sessions",
    ],
)
def test_lists_show_none_of_another_users_objects(
    app, client, redis_client, owner, intruder, path, auth
):
    targets = [build(app, client, owner, redis_client) for build in BUILDERS.values()]

    response = client.get(path, headers=AUTH_METHODS[auth](intruder))

    assert response.status_code == 200, response.get_data(as_text=True)
    for target in targets:
        assert target.id not in response.get_data(as_text=True)
        assert_leaks_nothing(response, target)


@pytest.mark.parametrize("auth", list(AUTH_METHODS))
def test_an_idempotency_key_never_returns_another_users_job(
    app, client, redis_client, owner, intruder, auth
):
    target = job_target(app, client, owner, redis_client)
    alices_key = "shared-retry-key-1"
    alices = ok_json(
        client.post(
            "/api/jobs/",
            json={"message": f"{target.marker} keyed question"},
            headers={**owner.headers, **NO_CACHE, "Idempotency-Key": alices_key},
        ),
        202,
    )
    target.secrets.update({alices["id"], alices["conversation_id"]})

    response = client.post(
        "/api/jobs/",
        json={"message": "my own question"},
        headers={**AUTH_METHODS[auth](intruder), **NO_CACHE, "Idempotency-Key": alices_key},
    )

    bobs = ok_json(response, 202)
    assert bobs["id"] != alices["id"]
    assert_leaks_nothing(response, target)
    assert ok_json(client.get(f"/api/jobs/{bobs['id']}", headers=intruder.headers))["id"]


@pytest.mark.parametrize("auth", list(AUTH_METHODS))
@pytest.mark.parametrize("timing", ["after-alices-answer", "during-alices-generation"])
def test_an_answer_shared_with_another_user_carries_none_of_the_first_users_ids(
    app, client, owner, intruder, timing, auth
):
    """CACHE_SCOPE=global shares answers between users by design: a later identical request
    gets the cached answer, one sent during the generation waits for it (single flight).
    Only the answer text may cross over, never Alice's job, conversation, message or user
    ids."""
    question = f"What is the capital of France? ({uuid.uuid4().hex})"
    headers = AUTH_METHODS[auth](intruder)
    alices = ok_json(
        client.post("/api/jobs/", json={"message": question}, headers=owner.headers), 202
    )
    if timing == "during-alices-generation":
        submitted = client.post("/api/jobs/", json={"message": question}, headers=headers)
        assert ok_json(submitted, 202)["status"] == "queued"  # waiting for Alice's job
    play_worker_success(app, uuid.UUID(alices["id"]), "Paris.")
    if timing == "after-alices-answer":
        submitted = client.post("/api/jobs/", json={"message": question}, headers=headers)
    alices_job = ok_json(client.get(f"/api/jobs/{alices['id']}", headers=owner.headers))
    alices_conversation = ok_json(
        client.get(f"/api/conversations/{alices['conversation_id']}", headers=owner.headers)
    )
    secrets = {owner.id, owner.email}
    for text in strings_in([alices_job, alices_conversation]):
        secrets.update(UUID_SHAPE.findall(text))
    assert alices_job["message_id"] in secrets  # the answer is stored in her conversation

    bobs = ok_json(submitted, 202)
    reads = [
        client.get(f"/api/jobs/{bobs['id']}", headers=headers),
        client.get(f"/api/jobs/{bobs['id']}/events", headers=headers),
        client.get(f"/api/conversations/{bobs['conversation_id']}", headers=headers),
    ]

    assert [read.status_code for read in reads] == [200, 200, 200]
    # Bob was answered from Alice's generation, not by a generation of his own.
    assert reads[0].get_json()["status"] == "succeeded"
    assert reads[0].get_json()["cached"] is True
    assert "Paris." in reads[1].get_data(as_text=True)
    for response in [submitted, *reads]:
        text = response.get_data(as_text=True)
        leaked = {secret for secret in secrets if secret in text}
        assert leaked == set(), f"{response.request.path} shows Alice's {leaked}: {text}"


@pytest.mark.parametrize("auth", list(AUTH_METHODS))
@pytest.mark.parametrize("route", ADMIN_ROUTES_WITH_IDS, ids=str)
@pytest.mark.parametrize(
    ("whom", "change"),
    [("alice", {"is_active": False}), ("self", {"role": "admin"})],
    ids=["deactivate-another-user", "promote-self"],
)
def test_a_plain_user_gets_403_on_an_admin_route_with_an_id(
    client, owner, intruder, route, whom, change, auth
):
    victim = owner if whom == "alice" else intruder

    response = client.open(
        route.url(victim.id),
        method=route.method,
        json=change,
        headers=AUTH_METHODS[auth](intruder),
    )

    error_of(response, 403, "forbidden")
    assert owner.email not in response.get_data(as_text=True)
    # Nothing changed: Alice is still active, Bob is still a plain user.
    assert ok_json(client.get("/api/user/me", headers=owner.headers))["is_active"] is True
    assert ok_json(client.get("/api/user/me", headers=intruder.headers))["role"] == "user"
