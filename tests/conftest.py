"""Fixtures on the machine's real PostgreSQL and Redis.

Each pytest run owns a database (created fresh, migrated with the project's Alembic
migrations, dropped at the end) and a Redis key prefix, both named after the run, so two
runs on one machine never meet. Tables and keys are cleaned before every test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from flask_migrate import upgrade
from sqlalchemy import text

# The shared harness; ROOT, free_port, stop_process and delete_keys stay importable from
# here, as the tests have them.
from tests.stack import ROOT as ROOT
from tests.stack import (
    ApiServer,
    database_maintenance,
    drop_database,
    recreate_database,
    start_api,
    storage_env,
)
from tests.stack import delete_keys as delete_keys
from tests.stack import free_port as free_port
from tests.stack import stop_process as stop_process

# Per-run names, exported so that server and worker processes started by tests share them.
_RUN_ID = f"{os.getpid()}"
for _name, _value in storage_env(
    "testing",
    f"postgresql://postgres@127.0.0.1:5432/llm_gateway_test_{_RUN_ID}",
    "redis://127.0.0.1:6379/15",
    f"gwtest:{_RUN_ID}:",
).items():
    if _name == "APP_ENV":
        os.environ[_name] = _value
    else:
        os.environ.setdefault(_name, _value)
# One random JWT secret for the run: the testing config alone makes one per process, and
# the servers tests start (several gunicorn workers, a dev stack) must accept each
# other's tokens and those the tests sign.
os.environ.setdefault("JWT_SECRET", secrets.token_urlsafe(48))
# Kept apart from the variable, which tests narrow for the apps they build (own_key_prefix).
RUN_KEY_PREFIX = os.environ["TEST_REDIS_KEY_PREFIX"]
# Short limits so the failure paths of jobs finish in seconds; inherited by the gunicorn
# and Celery worker processes that tests start.
for _name, _value in {
    "JOB_SOFT_TIME_LIMIT": "8",
    "JOB_TIME_LIMIT": "10",
    "BROKER_VISIBILITY_TIMEOUT": "12",
    "JOB_LOCK_TTL": "3",
    "LLM_CONNECT_TIMEOUT": "2",
    "LLM_READ_TIMEOUT": "3",
    "LLM_CONNECT_RETRY_SECONDS": "1",
    "CHAT_WAIT_SECONDS": "5",
    "SSE_HEARTBEAT_SECONDS": "1",
    "SEARCH_BACKEND": "tests.fakes.search:StaticBackend",
    "SEARCH_TIMEOUT": "2",
    # Generous, so only the tests about limits meet them (those set their own).
    "RATE_LIMIT_USER_PER_MINUTE": "100000",
    "RATE_LIMIT_ADMIN_PER_MINUTE": "100000",
    "MAX_JOBS_IN_FLIGHT": "100",
    "MAX_OPEN_STREAMS_PER_USER": "1000",
    "MAX_OPEN_STREAMS_PER_ADMIN": "1000",
    "MAX_CONVERSATIONS_PER_USER": "100000",
    "MAX_CONVERSATIONS_PER_ADMIN": "100000",
    "MAX_ACTIVE_BATCHES_PER_USER": "1000",
    "MAX_ACTIVE_BATCHES_PER_ADMIN": "1000",
    "MAX_STORED_BATCHES_PER_USER": "1000",
    "MAX_STORED_BATCHES_PER_ADMIN": "1000",
    # Off for the shared worker processes, whose reconciler would act on other tests'
    # jobs; the reconciler's own tests run it directly or start workers with it on.
    "RECONCILE_INTERVAL_SECONDS": "0",
    # The heavy tier's model takes images, and /v1 offers the gateway's web search when
    # a request names that model (tests of the OpenAI-compatible API use both).
    "VISION_MODELS": "qwen2.5:7b",
    "OPENAI_WEB_SEARCH_MODELS": "qwen2.5:7b",
}.items():
    os.environ.setdefault(_name, _value)

from api import create_app
from config.settings import TestingConfig
from core.db import db

TABLES = ["usage_records", "jobs", "messages", "conversations", "api_keys", "users"]
PASSWORD = "correct horse battery"


# Under its old name for the tests that import it from here.
_maintenance = database_maintenance


@pytest.fixture(scope="session")
def test_config() -> TestingConfig:
    return TestingConfig()


@pytest.fixture(scope="session")
def migrated_database(test_config: TestingConfig) -> Iterator[str]:
    """A fresh database with the schema built by the migrations (not by create_all)."""
    url = test_config.DATABASE_URL
    recreate_database(url)
    app = create_app(test_config)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def redis_client(test_config: TestingConfig) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(test_config.REDIS_URL, decode_responses=True)
    yield client
    # The run's keys go with it, as its database does.
    delete_keys(client, test_config.REDIS_KEY_PREFIX)


def clean_state(app, redis_client: redis.Redis) -> None:
    with app.app_context():
        db.session.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
        db.session.commit()
    prefix = app.config["REDIS_KEY_PREFIX"]
    # Queue bindings are declared once by running workers; without them a sent task is
    # silently dropped, so they survive the cleaning.
    delete_keys(redis_client, prefix, keep=f"{prefix}celery:_kombu.binding.")


@contextmanager
def own_key_prefix(redis_client: redis.Redis, name: str) -> Iterator[str]:
    """A Redis key prefix under the run's, named `name`; its keys are deleted afterwards.

    For apps and servers whose jobs must stay where they are put: the Celery workers that
    other tests of the run start read the run's main queues, and would take those jobs
    (and hold their rows) too. No worker reads the queues under this prefix.
    """
    prefix = f"{RUN_KEY_PREFIX}{name}:"
    try:
        yield prefix
    finally:  # also when the test failed inside the block
        delete_keys(redis_client, prefix)


@pytest.fixture
def clean_after(app, redis_client):
    """Clean up after the test too, for tests that leave jobs queued without a worker: a
    worker started by a later (integration) test would otherwise pick them up while that
    test cleans the database."""
    yield
    clean_state(app, redis_client)


@contextmanager
def fresh_app(config: TestingConfig, redis_client: redis.Redis) -> Iterator:
    """An app of `config` with the database and its keys cleaned; its connections closed after."""
    app = create_app(config)
    clean_state(app, redis_client)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(migrated_database, test_config, redis_client):
    with fresh_app(test_config, redis_client) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@dataclass
class Account:
    """A registered user and a logged-in session of theirs."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str
    role: str = "user"
    extra: dict = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def register_and_login(client, email: str, password: str = PASSWORD, name: str | None = None):
    body = {"email": email, "password": password}
    if name:
        body["name"] = name
    created = client.post("/api/auth/register", json=body)
    assert created.status_code == 201, created.get_json()
    tokens = client.post("/api/auth/login", json={"email": email, "password": password})
    assert tokens.status_code == 200, tokens.get_json()
    data = tokens.get_json()
    return Account(
        id=created.get_json()["id"],
        email=email,
        password=password,
        access_token=data["access_token"],
        refresh_token=data["refresh_token"],
    )


def make_admin(app, client, email: str) -> Account:
    """Register a user, grant the admin role the way an operator does, and log in."""
    account = register_and_login(client, email)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-admin", email])
    assert result.exit_code == 0, result.output
    tokens = client.post("/api/auth/login", json={"email": email, "password": account.password})
    data = tokens.get_json()
    account.access_token, account.refresh_token = data["access_token"], data["refresh_token"]
    account.role = "admin"
    return account


@pytest.fixture
def alice(app, client) -> Account:
    return register_and_login(client, "alice@example.com", name="Alice")


@pytest.fixture
def bob(app, client) -> Account:
    return register_and_login(client, "bob@example.com", name="Bob")


@pytest.fixture
def admin(app, client) -> Account:
    return make_admin(app, client, "admin@example.com")


# --- a real gunicorn server ---------------------------------------------------------


# The server of a test: its process (`.process`, `.log_path`, `.log_text()`) and `.url`.
LiveServer = ApiServer


def start_gunicorn(
    log_path: Path, env_overrides: dict[str, str] | None = None, workers: int = 2
) -> LiveServer:
    """gunicorn on a free port in the run's environment (plus `env_overrides`), healthy."""
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "WEB_CONCURRENCY": str(workers),
        **(env_overrides or {}),
    }
    server = start_api(log_path, env)
    try:
        return server.wait_healthy(30, request_timeout=1, tail_lines=None)
    except BaseException:
        server.stop()
        raise


def stop_gunicorn(server: LiveServer) -> None:
    server.stop()


@pytest.fixture(scope="session")
def gunicorn_server(migrated_database, tmp_path_factory) -> Iterator[LiveServer]:
    server = start_gunicorn(tmp_path_factory.mktemp("gunicorn") / "gunicorn.log")
    yield server
    stop_gunicorn(server)


@pytest.fixture
def live(gunicorn_server, app) -> LiveServer:
    """The gunicorn server, with the database and Redis cleaned for this test (via `app`)."""
    return gunicorn_server
