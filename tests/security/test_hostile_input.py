"""Hostile input: injection-shaped strings in every field, header and path id; secrets in the
logs; login brute force.

The operations and their fields are read from the app's own OpenAPI spec, so a new endpoint
or field is fuzzed without touching this file. Every answer must be a normal 2xx or a clean
4xx in the gateway's error shape (OpenAI's under /v1/), never a 5xx, and a refused request
must leave nothing behind: no new row in any table, no job on a queue.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from sqlalchemy import func, select

from config.logging_setup import ContextFilter, json_formatter
from core.db import db
from core.models.base import utcnow
from core.repositories import jobs as jobs_repo
from pipeline import queue
from tests import helpers
from tests.conftest import PASSWORD, make_admin, register_and_login
from tests.helpers import ERROR_FIELDS, app_with, bearer, change_settings, error_of
from tests.security.conftest import answer_job

# --- the payloads -----------------------------------------------------------------------------

LONG = "x" * 100_000
# json.dumps sends it as the escape "\ud800": valid JSON text, but no UTF-8 encoding exists.
LONE_SURROGATE = "\ud800"

INJECTION: dict[str, str] = {
    "sql_or": "' OR 1=1 --",
    "sql_drop": "'; DROP TABLE users; --",
    "sql_union": '1" UNION SELECT password_hash FROM users --',
    "long": LONG,
    "rtl_override": "abc\u202egnp.exe",
    "zero_width": "a\u200b\u200db\ufeff",
    "emoji": "\U0001f600\U0001f468\u200d\U0001f469\u200d\U0001f467 caf\u00e9",
    "path_traversal": "../../etc/passwd",
    "path_traversal_encoded": "..%2f..%2fetc%2fpasswd",
    "jinja": "{{7*7}}",
    "printf": "%s%n%x%d",
    "python_format": "{0.__class__}",
    "jndi": "${jndi:ldap://x}",
    "crlf": "a\r\nX-Injected: 1",
    "html": "<script>alert(1)</script>",
    "like_wildcards": "%_%",
    "email_sql": "x'--@example.com",
}
NUL: dict[str, str] = {"nul": "a\x00b", "nul_only": "\x00", "email_nul": "nul\x00@example.com"}
SURROGATE: dict[str, str] = {
    "lone_surrogate": LONE_SURROGATE,
    "surrogate_in_text": f"ab{LONE_SURROGATE}cd",
    "email_surrogate": f"{LONE_SURROGATE}@example.com",
}
# JSON type confusion: where a string is expected.
TYPES: dict[str, Any] = {
    "number": 12345,
    "float": 1e308,
    "bool": True,
    "list": ["a", "b"],
    "object": {"a": "b"},
    "null": None,
}
ALL_STRINGS: dict[str, str] = {**INJECTION, **NUL, **SURROGATE}
GROUPS: dict[str, dict[str, Any]] = {
    "injection_and_types": {**INJECTION, **TYPES},
    "nul": NUL,
    "lone_surrogate": SURROGATE,
}

# Path segments, URL-encoded as a client puts them on the wire.
PATH_SEGMENTS: dict[str, str] = {
    "sql": quote("' OR 1=1", safe=""),
    "sql_drop": quote("1; DROP TABLE jobs; --", safe=""),
    "nul": "%00",
    "uuid_then_nul": f"{uuid.uuid4()}%00",
    "long": "a" * 10_000,
    "traversal": "..%2F..%2Fetc%2Fpasswd",
    "jinja": quote("{{7*7}}", safe=""),
    "printf": quote("%s%n", safe=""),
    "jndi": quote("${jndi:ldap://x}", safe=""),
    "crlf": "a%0d%0aX-Injected:%201",
    "emoji": quote("\U0001f600", safe=""),
    "invalid_utf8": "%ED%A0%80%FF",
    "nil_uuid": "00000000-0000-0000-0000-000000000000",
    "uuid_in_braces": "%7B" + str(uuid.uuid4()) + "%7D",
}

# The gateway's own request ids.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
OPENAI_ERROR_FIELDS = {"message", "type", "param", "code"}


def group_params() -> list:
    """One test per payload group."""
    return [pytest.param(name, id=name) for name in GROUPS]


def on_the_wire(value: str) -> str:
    """A header or query value as a WSGI server hands it to the app: UTF-8 bytes as latin-1."""
    return value.encode("utf-8", "surrogatepass").decode("latin-1")


# --- checking an answer -----------------------------------------------------------------------


def problem_with(response, path: str) -> str | None:
    """Why a response is neither a normal 2xx nor a clean 4xx in the gateway's shape."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    if not 400 <= status < 500:
        body = response.get_json(silent=True)
        code = body["error"].get("code") if isinstance(body, dict) and "error" in body else None
        return f"status {status} ({code or response.get_data(as_text=True)[:80]!r})"
    if not response.is_json:
        return f"status {status} is not JSON: {response.get_data(as_text=True)[:80]!r}"
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return f"status {status}: body is not {{'error': {{...}}}}: {str(body)[:80]}"
    error = body["error"]
    if path.startswith("/v1/"):
        if set(error) != OPENAI_ERROR_FIELDS or not error.get("message"):
            return f"status {status}: not OpenAI's error shape: {str(error)[:80]}"
        return None
    if not {"code", "message", "request_id"} <= set(error) <= ERROR_FIELDS:
        return f"status {status}: not the gateway's error shape: {str(error)[:80]}"
    if not error["message"] or error["request_id"] != response.headers.get("X-Request-ID"):
        return f"status {status}: empty message, or request_id is not the response's"
    return None


def header_problems(response) -> list[str]:
    return [
        f"response header {name} carries a line break: {value[:60]!r}"
        for name, value in response.headers.items()
        if "\r" in value or "\n" in value
    ]


# --- an instant worker ------------------------------------------------------------------------

ANSWER = "Fine, thanks."


@dataclass
class InstantWorker:
    """Stands in for Celery: an enqueued job succeeds at once, ended as a worker ends it.

    So /api/chat/ and /v1/chat/completions answer 200 instead of waiting for a worker that
    these tests do not run, and nothing is left on a real queue. `enqueued` lists the jobs.
    """

    enqueued: list[str] = field(default_factory=list)

    def __call__(self, job_id: uuid.UUID, tier: str, *, priority: int | None = None) -> None:
        self.enqueued.append(str(job_id))
        job = jobs_repo.get(job_id)
        now = utcnow()
        job.status, job.started_at, job.first_token_at = "running", now, now
        answer_job(job, ANSWER, 3, 2)


@pytest.fixture
def worker(monkeypatch) -> InstantWorker:
    instant = InstantWorker()
    monkeypatch.setattr(queue, "enqueue_job", instant)
    return instant


# --- the API surface, from the OpenAPI spec ---------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the spec's template, e.g. /api/jobs/{job_id}
    path_params: tuple[str, ...]
    query_params: tuple[dict, ...]
    json_schema: dict | None
    content_types: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def resolve(spec: dict, schema: Any) -> Any:
    """The schema with every $ref replaced by its definition."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return resolve(spec, spec["components"]["schemas"][name])
        return {key: resolve(spec, value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [resolve(spec, item) for item in schema]
    return schema


def spec_operations(client) -> list[Operation]:
    spec = client.get("/openapi.json").get_json()
    operations = []
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            params = [*shared, *op.get("parameters", [])]
            content = op.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            operations.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    path_params=tuple(p["name"] for p in params if p["in"] == "path"),
                    query_params=tuple(p for p in params if p["in"] == "query"),
                    json_schema=resolve(spec, schema) if schema else None,
                    content_types=tuple(content),
                )
            )
    return operations


def synthesize(schema: dict, counter: Iterator[int]) -> Any:
    """A plausible valid value for a schema, for an operation without a written example."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return synthesize(options[0], counter)
    if "enum" in schema:
        return next(value for value in schema["enum"] if value is not None)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            name: synthesize(prop, counter)
            for name, prop in schema.get("properties", {}).items()
            if name in schema.get("required", []) and not prop.get("readOnly")
        }
    if kind == "array":
        return [synthesize(schema.get("items") or {"type": "string"}, counter)]
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    formats = {
        "email": lambda: f"fuzz{next(counter)}@example.com",
        "uuid": lambda: str(uuid.uuid4()),
        "date-time": lambda: "2024-01-01T00:00:00Z",
    }
    return formats.get(schema.get("format"), lambda: "hello")()


def is_string_schema(schema: dict | None) -> bool:
    """A string property, or an untyped one (a chat message's content: string or parts)."""
    if not schema:
        return True
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return any(is_string_schema(option) for option in options)
    return schema.get("type") in ("string", None) and "properties" not in schema


def matching(schema: dict | None, value: Any) -> dict:
    """The option of an anyOf/oneOf schema that describes `value` (a list or an object)."""
    schema = schema or {}
    options = schema.get("anyOf") or schema.get("oneOf")
    if not options:
        return schema
    wanted = "array" if isinstance(value, list) else "object"
    return next(
        (
            o
            for o in options
            if o.get("type") == wanted or (wanted == "object" and "properties" in o)
        ),
        {},
    )


FieldPath = tuple[Any, ...]  # keys and list indexes; ("key", name) stands for an object's key


def string_paths(schema: dict | None, value: Any, at: FieldPath = ()) -> list[FieldPath]:
    """Where a string goes in a body: the schema's string properties (those the example leaves
    out too), every string in the example, and the keys of free-form objects."""
    schema = matching(schema, value)
    found: list[FieldPath] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in dict.fromkeys([*props, *value]):
            prop = props.get(name)
            if name not in value:
                if prop is not None and prop.get("type") == "string" and not prop.get("readOnly"):
                    found.append((*at, name))
            elif isinstance(value[name], str) and (prop is None or is_string_schema(prop)):
                found.append((*at, name))
            elif isinstance(value[name], dict | list):
                found.extend(string_paths(prop, value[name], (*at, name)))
        if "additionalProperties" in schema and not props:
            found.extend((*at, ("key", name)) for name in value)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                found.append((*at, index))
            else:
                found.extend(string_paths(schema.get("items"), item, (*at, index)))
    return found


def with_value(body: Any, path: FieldPath, payload: Any) -> Any:
    """A deep copy of `body` with `payload` at `path`."""
    body = json.loads(json.dumps(body))
    *parents, last = path
    target = body
    for step in parents:
        target = target[step]
    if isinstance(last, tuple):
        target[payload] = target.pop(last[1])
    else:
        target[last] = payload
    return body


def show(path: FieldPath) -> str:
    return ".".join(f"<key {step[1]}>" if isinstance(step, tuple) else str(step) for step in path)


# --- the world the requests run in ------------------------------------------------------------


@dataclass
class World:
    app: Any
    client: Any
    admin: Any
    alice: Any
    api_key: str
    conversation_id: str
    counter: Iterator[int]

    @property
    def auth(self) -> dict[str, str]:
        # An API key: it keeps working when a fuzzed request changes the password.
        return {"X-API-Key": self.api_key}

    def path_for(self, op: Operation) -> str:
        ids = {"conversation_id": self.conversation_id, "user_id": self.alice.id}
        path = op.path
        for name in op.path_params:
            path = path.replace("{" + name + "}", ids.get(name, str(uuid.uuid4())))
        return path

    def row_counts(self) -> dict[str, int]:
        with self.app.app_context():
            tables = db.metadata.sorted_tables
            query = select(
                *(
                    select(func.count()).select_from(t).scalar_subquery().label(t.name)
                    for t in tables
                )
            )
            counts = dict(db.session.execute(query).mappings().one())
            db.session.remove()
        return counts


def numbers() -> Iterator[int]:
    number = 0
    while True:
        number += 1
        yield number


@pytest.fixture
def world(app, client, worker) -> World:
    # Generous limits: the fuzzing must reach validation, not the throttles tested below.
    change_settings(
        app,
        LOGIN_RATE_LIMIT_PER_IP="1000000/minute",
        LOGIN_RATE_LIMIT_PER_EMAIL="1000000/minute",
        REGISTER_RATE_LIMIT_PER_IP="1000000/minute",
        MAX_API_KEYS_PER_USER=1_000_000,
    )
    admin = make_admin(app, client, "admin@example.com")
    alice = register_and_login(client, "alice@example.com")
    created = client.post("/api/user/api-keys", json={"name": "fuzz"}, headers=admin.headers)
    assert created.status_code == 201, created.get_json()
    conversation = client.post("/api/conversations/", json={"title": "fuzz"}, headers=admin.headers)
    assert conversation.status_code == 201, conversation.get_json()
    return World(
        app=app,
        client=client,
        admin=admin,
        alice=alice,
        api_key=created.get_json()["key"],
        conversation_id=conversation.get_json()["id"],
        counter=numbers(),
    )


def examples(world: World) -> dict[str, Callable[[], Any]]:
    """Valid bodies to start from, so the fuzzed field is the only thing wrong. An operation
    not listed gets a body synthesized from its schema."""
    job = {"message": "hello there", "conversation_id": world.conversation_id, "model": "auto"}
    return {
        "POST /api/auth/register": lambda: {
            "email": f"fuzz{next(world.counter)}@example.com",
            "password": PASSWORD,
            "name": "Fuzz",
        },
        "POST /api/auth/login": lambda: {"email": world.admin.email, "password": PASSWORD},
        "PUT /api/user/me": lambda: {"name": "Admin"},
        "PUT /api/user/me/password": lambda: {
            "current_password": PASSWORD,
            "new_password": "another long passphrase",
        },
        "POST /api/user/api-keys": lambda: {"name": "a key"},
        "POST /api/conversations/": lambda: {"title": "a title"},
        "PATCH /api/conversations/{conversation_id}": lambda: {"title": "renamed"},
        "POST /api/jobs/": lambda: dict(job),
        "POST /api/chat/": lambda: dict(job),
        "POST /api/chat/stream": lambda: dict(job),
        "POST /api/batches/": lambda: {
            "requests": [{"custom_id": "r1", "message": "hello", "model": "auto"}],
            "metadata": {"project": "fuzz"},
        },
        "PATCH /api/admin/users/{user_id}": lambda: {"role": "user"},
        "POST /v1/chat/completions": lambda: {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "Be brief.", "name": "rules"},
                {"role": "user", "content": "hello", "name": "me"},
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
            ],
            "user": "user-1",
        },
    }


# One line of OpenAI's batch file format (application/jsonl or the form field `file`).
JSONL_LINE = {
    "custom_id": "r1",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {
        "model": "auto",
        "messages": [{"role": "user", "content": "hello", "name": "me"}],
        "user": "user-1",
    },
}


def body_maker(world: World, op: Operation) -> Callable[[], Any]:
    known = examples(world)
    if op.name in known:
        return known[op.name]
    return lambda: synthesize(op.json_schema or {}, world.counter)


def send_json(world: World, op: Operation, body: Any, headers: dict | None = None):
    # json.dumps writes a lone surrogate as the escape "\ud800", as a JavaScript client would.
    return world.client.open(
        world.path_for(op),
        method=op.method,
        data=json.dumps(body),
        content_type="application/json",
        headers=world.auth if headers is None else headers,
    )


def restore_password(world: World, op: Operation, body: Any, response) -> str | None:
    """After an accepted password change the new (hostile) password must work; then back."""
    if op.name != "PUT /api/user/me/password" or response.status_code != 200:
        return None
    back = world.client.put(
        "/api/user/me/password",
        json={"current_password": body["new_password"], "new_password": PASSWORD},
        headers=world.auth,
    )
    if back.status_code != 200:
        return f"the accepted new password does not work as the current one ({back.status_code})"
    return None


@dataclass
class Fuzzer:
    """Sends requests and collects every bad answer, to fail once with the whole list."""

    world: World
    worker: InstantWorker
    failures: list[str] = field(default_factory=list)
    sent: int = 0

    def __post_init__(self) -> None:
        self.counts = self.world.row_counts()

    def send(self, label: str, path: str, call: Callable[[], Any], after=None) -> Any:
        enqueued = len(self.worker.enqueued)
        self.sent += 1
        try:
            response = call()
            response.get_data()  # streams (SSE, JSONL) are read to the end: errors there count
        except Exception as exc:  # escaped the app: a server would answer 500 or cut the stream
            self.failures.append(f"{label}: raised {exc.__class__.__name__}: {exc}"[:240])
            self.counts = self.world.row_counts()
            return None
        problem = problem_with(response, path) or next(iter(header_problems(response)), None)
        counts = self.world.row_counts()
        if not 200 <= response.status_code < 300:
            changed = {t: (self.counts[t], n) for t, n in counts.items() if self.counts[t] != n}
            if changed:
                problem = f"{problem or response.status_code}; and rows changed: {changed}"
            elif len(self.worker.enqueued) != enqueued:
                problem = f"{problem or response.status_code}; and a job was enqueued"
        if problem is None and after is not None:
            problem = after(response)
            counts = self.world.row_counts()
        self.counts = counts
        if problem:
            self.failures.append(f"{label}: {problem}")
        return response

    def assert_clean(self) -> None:
        listing = "\n".join(self.failures)
        assert not self.failures, f"{len(self.failures)} of {self.sent} requests:\n{listing}"


# --- 1. hostile strings in every body field, query parameter and path id ----------------------


def test_the_spec_yields_the_operations_and_fields_to_fuzz(world):
    """A guard on the enumeration: if it found nothing, the fuzzing would test nothing."""
    operations = spec_operations(world.client)
    with_bodies = {op.name for op in operations if op.json_schema}
    fields = {
        op.name: {show(p) for p in string_paths(op.json_schema, body_maker(world, op)())}
        for op in operations
        if op.json_schema
    }

    assert set(examples(world)) <= with_bodies
    assert {"email", "password", "name"} <= fields["POST /api/auth/register"]
    assert {
        "messages.1.content",
        "messages.1.role",
        "messages.3.content.0.text",
        "model",
        "user",
    } <= fields["POST /v1/chat/completions"]
    assert {"requests.0.message", "requests.0.custom_id", "metadata.<key project>"} <= fields[
        "POST /api/batches/"
    ]
    queried = {op.name: {p["name"] for p in op.query_params} for op in operations}
    assert {"email", "role"} <= queried["GET /api/admin/users"]
    assert {"from", "to"} <= queried["GET /api/admin/stats"]
    assert any(op.path_params for op in operations)


@pytest.mark.parametrize("group", group_params())
def test_every_json_string_field_survives_hostile_values(world, worker, group):
    fuzzer = Fuzzer(world, worker)
    known = examples(world)
    for op in spec_operations(world.client):
        if op.json_schema is None:
            continue
        make_body = body_maker(world, op)
        # The example as written must be accepted, or the fuzzing meets the wrong refusal.
        example = make_body()
        baseline = fuzzer.send(
            f"{op.name} example",
            op.path,
            lambda op=op, body=example: send_json(world, op, body),
            after=lambda response, op=op, body=example: restore_password(world, op, body, response),
        )
        if op.name in known and baseline is not None and not 200 <= baseline.status_code < 300:
            fuzzer.failures.append(f"{op.name}: the example is refused: {baseline.get_json()}")
        for field_path in string_paths(op.json_schema, make_body()):
            for name, payload in GROUPS[group].items():
                if isinstance(field_path[-1], tuple) and not isinstance(payload, str):
                    continue  # an object's keys are always strings
                body = with_value(make_body(), field_path, payload)
                fuzzer.send(
                    f"{op.name} {show(field_path)}={name}",
                    op.path,
                    lambda op=op, body=body: send_json(world, op, body),
                    after=lambda response, op=op, body=body: restore_password(
                        world, op, body, response
                    ),
                )
    fuzzer.assert_clean()


@pytest.mark.parametrize("group", group_params())
def test_batch_files_survive_hostile_values(world, worker, group):
    op = next(o for o in spec_operations(world.client) if "application/jsonl" in o.content_types)
    fuzzer = Fuzzer(world, worker)
    for field_path in string_paths(None, JSONL_LINE):
        for name, payload in GROUPS[group].items():
            line = json.dumps(with_value(JSONL_LINE, field_path, payload)).encode()
            fuzzer.send(
                f"{op.name} [jsonl] {show(field_path)}={name}",
                op.path,
                lambda line=line: world.client.post(
                    op.path, data=line, content_type="application/jsonl", headers=world.auth
                ),
            )
            fuzzer.send(
                f"{op.name} [upload] {show(field_path)}={name}",
                op.path,
                lambda line=line: world.client.post(
                    op.path,
                    data={"file": (io.BytesIO(line), "batch.jsonl")},
                    content_type="multipart/form-data",
                    headers=world.auth,
                ),
            )
    fuzzer.assert_clean()


@pytest.mark.parametrize("group", group_params())
def test_every_query_parameter_survives_hostile_values(world, worker, group):
    fuzzer = Fuzzer(world, worker)
    for op in spec_operations(world.client):
        path = world.path_for(op)
        for param in op.query_params:
            for name, payload in GROUPS[group].items():
                if not isinstance(payload, str):
                    continue  # a query string holds text only
                query = urlencode({param["name"]: on_the_wire(payload)}, encoding="latin-1")
                fuzzer.send(
                    f"{op.name} ?{param['name']}={name}",
                    op.path,
                    lambda op=op, path=path, query=query: world.client.open(
                        f"{path}?{query}", method=op.method, headers=world.auth
                    ),
                )
    fuzzer.assert_clean()


def test_path_ids_that_are_not_uuids_are_not_found(world, worker):
    fuzzer = Fuzzer(world, worker)
    for op in spec_operations(world.client):
        if not op.path_params:
            continue
        body = body_maker(world, op)() if op.json_schema else None
        for name, segment in PATH_SEGMENTS.items():
            path = op.path
            for param in op.path_params:
                path = path.replace("{" + param + "}", segment)
            fuzzer.send(
                f"{op.name} id={name}",
                op.path,
                lambda op=op, path=path, body=body: world.client.open(
                    path, method=op.method, headers=world.auth, json=body
                ),
                after=lambda response: (
                    None
                    if response.status_code == 404
                    else f"answered {response.status_code}, not 404"
                ),
            )
    fuzzer.assert_clean()


MALFORMED_BODIES: dict[str, bytes] = {
    "invalid_utf8": b'{"title": "\xff\xfe"}',
    "truncated": b'{"title": "a',
    "not_json": b"' OR 1=1 --",
    "empty_object": b"{}",
    "array": b'["a"]',
    "string": b'"a"',
    "number": b"1",
    "null": b"null",
    "nan": b'{"temperature": NaN}',
    "infinity": b'{"temperature": -Infinity}',
    "huge_float": b'{"max_tokens": 1e999}',
    "duplicate_keys": b'{"name": "a", "name": "b"}',
    "moderately_nested": b"[" * 500 + b"]" * 500,
}


def test_malformed_json_bodies_get_a_clean_answer(world, worker):
    fuzzer = Fuzzer(world, worker)
    for op in spec_operations(world.client):
        if op.json_schema is None:
            continue
        for name, raw in MALFORMED_BODIES.items():
            fuzzer.send(
                f"{op.name} body={name}",
                op.path,
                lambda op=op, raw=raw: world.client.open(
                    world.path_for(op),
                    method=op.method,
                    data=raw,
                    content_type="application/json",
                    headers=world.auth,
                ),
            )
    fuzzer.assert_clean()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply_nested"),
        pytest.param(b'{"a": ' + b"9" * 5000 + b"}", id="5000_digit_integer"),
    ],
)
def test_pathological_json_gets_a_clean_answer(world, worker, raw):
    fuzzer = Fuzzer(world, worker)
    for op in spec_operations(world.client):
        if op.json_schema is None:
            continue
        fuzzer.send(
            f"{op.name}",
            op.path,
            lambda op=op: world.client.open(
                world.path_for(op),
                method=op.method,
                data=raw,
                content_type="application/json",
                headers=world.auth,
            ),
        )
    fuzzer.assert_clean()


def test_accepted_hostile_strings_are_stored_verbatim_and_never_interpreted(world, worker):
    client, auth = world.client, world.auth
    fits = {name: value for name, value in INJECTION.items() if len(value) <= 100}
    for name, value in fits.items():
        created = client.post("/api/conversations/", json={"title": value}, headers=auth)
        assert created.status_code == 201, (name, created.get_json())
        shown = client.get(f"/api/conversations/{created.get_json()['id']}", headers=auth)
        assert shown.get_json()["title"] == value.strip(), name

        renamed = client.put("/api/user/me", json={"name": value}, headers=auth)
        assert renamed.status_code == 200, (name, renamed.get_json())
        assert client.get("/api/user/me", headers=auth).get_json()["name"] == value.strip(), name

        job = client.post("/api/jobs/", json={"message": value, "model": "light"}, headers=auth)
        assert job.status_code == 202, (name, job.get_json())
        conversation = job.get_json()["conversation_id"]
        messages = client.get(f"/api/conversations/{conversation}", headers=auth).get_json()
        assert messages["messages"][0]["content"] == value.strip(), name

    # Nothing was dropped or widened by the SQL-shaped strings.
    assert world.row_counts()["users"] == 2
    assert (
        client.post(
            "/api/auth/login", json={"email": world.alice.email, "password": PASSWORD}
        ).status_code
        == 200
    )
    admin = bearer(world.admin.access_token)
    for needle in ("' OR 1=1 --", "%", "_", "' OR '1'='1", "%' OR email LIKE '%"):
        found = client.get("/api/admin/users", query_string={"email": needle}, headers=admin)
        assert found.status_code == 200, found.get_json()
        assert found.get_json()["total"] == 0, needle
    everyone = client.get("/api/admin/users", query_string={"email": "example"}, headers=admin)
    assert everyone.get_json()["total"] == 2


# --- 2. hostile headers -----------------------------------------------------------------------

HEADER_PAYLOADS: dict[str, str] = {
    **{name: on_the_wire(value) for name, value in ALL_STRINGS.items()},
    "latin1_bytes": "caf\xe9 \xff\xfe",
    "empty": "",
    "spaces": "   ",
    "jwt_alg_none": "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
    "jwt_garbage": "eyJ.eyJ.x",
    "api_key_shape_newline": "gw_" + "A" * 43 + "\n",
    "api_key_shape_nul": "gw_" + "A" * 43 + "\x00",
}


def test_hostile_credentials_are_401_never_5xx(world):
    fuzzer = Fuzzer(world, InstantWorker())
    real_key = world.api_key
    cases: dict[str, dict[str, str]] = {}
    for name, value in {
        **HEADER_PAYLOADS,
        "real_key_plus_sql": real_key + "' OR 1=1 --",
        "real_key_plus_nul": real_key + "\x00",
        "real_key_lowercased": real_key.lower(),
    }.items():
        cases[f"Authorization: Bearer {name}"] = {"HTTP_AUTHORIZATION": f"Bearer {value}"}
        cases[f"Authorization: {name}"] = {"HTTP_AUTHORIZATION": value}
        cases[f"Authorization: Bearer gw_{name}"] = {"HTTP_AUTHORIZATION": f"Bearer gw_{value}"}
        cases[f"Authorization: Basic {name}"] = {"HTTP_AUTHORIZATION": f"Basic {value}"}
        cases[f"X-API-Key: {name}"] = {"HTTP_X_API_KEY": value}
        cases[f"X-API-Key: gw_{name}"] = {"HTTP_X_API_KEY": f"gw_{value}"}

    def unauthorized(response) -> str | None:
        if response.status_code != 401:
            return f"answered {response.status_code}, not 401"
        if response.headers.get("WWW-Authenticate") != "Bearer":
            return "no WWW-Authenticate: Bearer"
        return None

    for path in ("/api/user/me", "/v1/models"):
        for label, environ in cases.items():
            fuzzer.send(
                f"GET {path} {label}",
                path,
                lambda path=path, environ=environ: world.client.get(path, environ_base=environ),
                after=unauthorized,
            )
    fuzzer.assert_clean()
    # The key itself works: the 401s above are about the hostile values, not a broken setup.
    assert world.client.get("/api/user/me", headers={"X-API-Key": real_key}).status_code == 200
    assert world.client.get("/v1/models", headers=bearer(real_key)).status_code == 200


def test_hostile_request_ids_are_replaced_not_echoed(world):
    fuzzer = Fuzzer(world, InstantWorker())
    for name, value in HEADER_PAYLOADS.items():
        for path in ("/health", "/api/user/me", "/v1/models"):

            def replaced(response, value=value) -> str | None:
                echoed = response.headers.get("X-Request-ID", "")
                if not REQUEST_ID.fullmatch(echoed):
                    return f"X-Request-ID {echoed[:60]!r} is not a plain id"
                if REQUEST_ID.fullmatch(value) and echoed != value:
                    return "a plain id was not honoured"
                if not REQUEST_ID.fullmatch(value) and echoed == value:
                    return "the hostile id was echoed"
                return None

            fuzzer.send(
                f"GET {path} X-Request-ID: {name}",
                path,
                lambda path=path, value=value: world.client.get(
                    path, environ_base={"HTTP_X_REQUEST_ID": value}
                ),
                after=replaced,
            )
    fuzzer.assert_clean()
    # A plain id is honoured, so the replacements above are the sanitizer at work.
    kept = world.client.get("/api/user/me", headers={"X-Request-ID": "trace-1.2:3"})
    assert kept.headers["X-Request-ID"] == "trace-1.2:3"
    assert error_of(kept, 401)["request_id"] == "trace-1.2:3"


def test_hostile_idempotency_keys_are_refused_or_used_verbatim(world, worker):
    fuzzer = Fuzzer(world, worker)
    accepted: dict[str, str] = {}
    for name, value in HEADER_PAYLOADS.items():

        def same_job_again(response, value=value, name=name) -> str | None:
            if response.status_code != 202:
                return None
            again = world.client.post(
                "/api/jobs/",
                json={"message": "idempotent?"},
                headers=world.auth,
                environ_base={"HTTP_IDEMPOTENCY_KEY": value},
            )
            accepted[name] = response.get_json()["id"]
            if again.status_code != 202 or again.get_json()["id"] != accepted[name]:
                return f"the same key gave another answer: {again.status_code}"
            return None

        fuzzer.send(
            f"POST /api/jobs/ Idempotency-Key: {name}",
            "/api/jobs/",
            lambda value=value: world.client.post(
                "/api/jobs/",
                json={"message": "idempotent?"},
                headers=world.auth,
                environ_base={"HTTP_IDEMPOTENCY_KEY": value},
            ),
            after=same_job_again,
        )
    fuzzer.assert_clean()
    assert "sql_or" in accepted and "nul" not in accepted and "long" not in accepted
    # Each accepted key made exactly one job: no key matched another one's row.
    assert len(set(accepted.values())) == len(accepted)


@pytest.fixture
def ended_job(world, worker) -> str:
    created = world.client.post("/api/jobs/", json={"message": "stream me"}, headers=world.auth)
    assert created.status_code == 202 and created.get_json()["status"] == "succeeded"
    return created.get_json()["id"]


def replay_events(world: World, job_id: str, last_event_id: str, where: str):
    path = f"/api/jobs/{job_id}/events"
    if where == "header":
        return world.client.get(
            path, headers=world.auth, environ_base={"HTTP_LAST_EVENT_ID": last_event_id}
        )
    query = urlencode({"last_event_id": last_event_id}, encoding="latin-1")
    return world.client.get(f"{path}?{query}", headers=world.auth)


def test_hostile_last_event_ids_replay_the_stream(world, worker, ended_job):
    fuzzer = Fuzzer(world, worker)
    for name, value in HEADER_PAYLOADS.items():
        for where in ("header", "query"):

            def whole_stream(response) -> str | None:
                body = response.get_data(as_text=True)
                if response.status_code != 200 or "event: done" not in body:
                    return f"{response.status_code}: no full replay: {body[:80]!r}"
                return None

            fuzzer.send(
                f"GET events Last-Event-ID ({where}): {name}",
                "/api/jobs/{job_id}/events",
                lambda value=value, where=where: replay_events(world, ended_job, value, where),
                after=whole_stream,
            )
    fuzzer.assert_clean()


@pytest.mark.parametrize("value", ["\u00b2-1", "99999999999999999999-0"])
def test_digit_lookalike_last_event_ids_do_not_break_the_stream(world, worker, ended_job, value):
    fuzzer = Fuzzer(world, worker)
    for where in ("header", "query"):
        fuzzer.send(
            f"GET events Last-Event-ID ({where}): {value!r}",
            "/api/jobs/{job_id}/events",
            lambda where=where: replay_events(world, ended_job, value, where),
        )
    fuzzer.assert_clean()


# --- 3. no secret in any log line -------------------------------------------------------------


class CapturedLines(logging.Handler):
    """Every record of every logger, as the project's formatter writes it to the log."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(json_formatter())
        self.addFilter(ContextFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured_logs() -> Iterator[CapturedLines]:
    root = logging.getLogger()
    handler, level = CapturedLines(), root.level
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_no_secret_reaches_a_log_line(app, monkeypatch, captured_logs):
    jwt_secret = f"jwt-secret-{uuid.uuid4().hex}-for-the-log-test"
    # At DEBUG: what an operator chasing a problem turns on must not leak either.
    secure_app = app_with(monkeypatch, JWT_SECRET=jwt_secret, LOG_LEVEL="DEBUG")
    client = secure_app.test_client()
    password, new_password = "Tr0ub4dor&3-old-secret", "Corr3ct.Horse:new-secret"
    email = "logged@example.com"
    secrets: dict[str, str] = {"JWT_SECRET": jwt_secret, "password": password}

    assert (
        client.post(
            "/api/auth/register", json={"email": email, "password": password, "name": "Logged"}
        ).status_code
        == 201
    )
    pair = client.post("/api/auth/login", json={"email": email, "password": password}).get_json()
    secrets |= {"access token": pair["access_token"], "refresh token": pair["refresh_token"]}
    rotated = client.post("/api/auth/refresh", headers=bearer(pair["refresh_token"])).get_json()
    secrets |= {
        "rotated access": rotated["access_token"],
        "rotated refresh": rotated["refresh_token"],
    }
    access = rotated["access_token"]
    key = client.post(
        "/api/user/api-keys", json={"name": "logged"}, headers=bearer(access)
    ).get_json()["key"]
    secrets["API key"] = key

    assert client.get("/api/user/me", headers={"X-API-Key": key}).status_code == 200
    assert client.get("/api/conversations/", headers=bearer(key)).status_code == 200
    # Credentials in the wrong places, where clients put them by mistake.
    client.get(f"/api/user/me?api_key={key}&password={password}", headers=bearer(access))
    client.get(f"/api/conversations/{key}", headers={"X-API-Key": key})
    client.get("/api/user/me", headers={"X-API-Key": key, "X-Request-ID": key})
    client.get("/api/user/me", headers={**bearer(access), "User-Agent": f"tool {access}"})
    # Failures: a wrong password, a tampered and a refreshed-away token, a revoked key.
    assert (
        client.post(
            "/api/auth/login", json={"email": email, "password": password + "x"}
        ).status_code
        == 401
    )
    assert client.get("/api/user/me", headers=bearer(access[:-2] + "xy")).status_code == 401
    assert (
        client.post("/api/auth/refresh", headers=bearer(pair["refresh_token"])).status_code == 401
    )
    assert client.get("/api/user/me", headers={"X-API-Key": key[:-1] + "Z"}).status_code == 401
    # Requests refused for their content (NUL, lone surrogate) carry a password too: nothing
    # of it may reach a log line either.
    client.post("/api/auth/login", json={"email": "a\x00b@example.com", "password": password})
    client.post(
        "/api/auth/register",
        data=json.dumps({"email": "x@example.com", "password": password, "name": "\ud800"}),
        content_type="application/json",
    )
    # The replayed refresh token revoked its session: a new login for a password change.
    fresh = client.post("/api/auth/login", json={"email": email, "password": password})
    access = fresh.get_json()["access_token"]
    secrets |= {"fresh access": access, "fresh refresh": fresh.get_json()["refresh_token"]}
    changed = client.put(
        "/api/user/me/password",
        json={"current_password": password, "new_password": new_password},
        headers=bearer(access),
    )
    assert changed.status_code == 200, changed.get_json()
    secrets["new password"] = new_password
    secrets["changed access"] = changed.get_json()["access_token"]
    assert (
        client.put(
            "/api/user/me/password",
            json={"current_password": "wrong-" + password, "new_password": new_password},
            headers=bearer(changed.get_json()["access_token"]),
        ).status_code
        == 422
    )
    assert (
        client.post("/api/auth/login", json={"email": email, "password": new_password}).status_code
        == 200
    )
    assert (
        client.post(
            "/api/auth/logout", headers=bearer(changed.get_json()["access_token"])
        ).status_code
        == 204
    )

    lines = captured_logs.lines
    # The capture holds the app's own lines: one access line per request at least.
    assert sum('"logger": "api.access"' in line for line in lines) >= 18
    leaks = [
        f"{name} in: {line[:300]}"
        for line in lines
        for name, value in secrets.items()
        if value in line
    ]
    assert not leaks, "\n".join(leaks)


# --- 4. login brute force ---------------------------------------------------------------------

WRONG = "not the password"


# Logins come from one address unless a test names another.
login = partial(helpers.login, ip="198.51.100.1")


def assert_throttled(response) -> dict:
    error = error_of(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    return error


def test_failed_logins_for_one_account_from_one_address_are_throttled(app, client, alice):
    limit = int(app.config["LOGIN_RATE_LIMIT_PER_EMAIL"].split("/")[0])
    for _ in range(limit):
        response = login(client, alice.email, WRONG, ip="203.0.113.1")
        assert error_of(response, 401)["code"] == "unauthorized"

    # The email spelled otherwise: the same account's budget from that address is spent,
    # even for the right password.
    assert_throttled(login(client, " ALICE@example.COM ", WRONG, ip="203.0.113.1"))
    assert_throttled(login(client, alice.email, PASSWORD, ip="203.0.113.1"))


def test_failed_logins_for_one_account_from_many_addresses_are_throttled(app, client, alice):
    change_settings(app, LOGIN_RATE_LIMIT_PER_EMAIL_ALL_IPS="6/minute")
    for attempt in range(6):
        response = login(client, alice.email, WRONG, ip=f"203.0.113.{attempt + 1}")
        assert error_of(response, 401)["code"] == "unauthorized"

    assert_throttled(login(client, " ALICE@example.COM ", WRONG, ip="192.0.2.200"))


def test_failed_logins_from_one_address_are_throttled_across_accounts(app, client):
    limit = int(app.config["LOGIN_RATE_LIMIT_PER_IP"].split("/")[0])
    for number in range(limit):
        assert login(client, f"guess{number}@example.com", WRONG).status_code == 401

    assert_throttled(login(client, "guess-next@example.com", WRONG))
    # Another address is not affected.
    assert login(client, "guess-next@example.com", WRONG, ip="192.0.2.7").status_code == 401


def test_guessing_the_current_password_with_a_stolen_token_is_throttled(app, client, alice):
    limit = int(app.config["LOGIN_RATE_LIMIT_PER_EMAIL"].split("/")[0])
    guess = {"current_password": WRONG, "new_password": "a new long passphrase"}
    for _ in range(limit):
        response = client.put("/api/user/me/password", json=guess, headers=alice.headers)
        assert error_of(response, 422)["code"] == "validation_error"

    assert_throttled(client.put("/api/user/me/password", json=guess, headers=alice.headers))


def test_an_attacker_at_one_address_cannot_lock_the_owner_out(app, client, alice):
    limit = int(app.config["LOGIN_RATE_LIMIT_PER_EMAIL"].split("/")[0])
    for _ in range(limit + 3):
        login(client, alice.email, WRONG, ip="203.0.113.66")
    assert_throttled(login(client, alice.email, WRONG, ip="203.0.113.66"))

    # The owner, from their own address, still gets in.
    assert login(client, alice.email, PASSWORD, ip="192.0.2.10").status_code == 200


def test_a_spent_account_budget_refuses_the_owner_only_until_the_window_ends(app, client, alice):
    """While an account's budget over all addresses is spent its owner is refused too (the
    limiter checks before the password is), but only until the window ends."""
    change_settings(app, LOGIN_RATE_LIMIT_PER_EMAIL_ALL_IPS="2/2 seconds")
    for attempt in range(2):
        assert login(client, alice.email, WRONG, ip=f"203.0.113.{attempt + 1}").status_code == 401

    locked = login(client, alice.email, PASSWORD, ip="192.0.2.10")
    assert_throttled(locked)
    assert int(locked.headers["Retry-After"]) <= 2

    time.sleep(int(locked.headers["Retry-After"]) + 0.5)
    assert login(client, alice.email, PASSWORD, ip="192.0.2.10").status_code == 200
