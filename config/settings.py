"""Settings: typed, grouped by area, read from environment variables, each declared once.

Every setting is a field of one area's model below: its environment variable, type,
default and description. The same declarations produce `.env.example` and
docs/operations/configuration.md (`make config-docs`, i.e. `python -m config.reference`;
tests/test_config_reference.py fails when either file is out of date): edit a setting
here, then regenerate them.

How the app gets its configuration:

- `load_config()` picks the class named by APP_ENV (development, testing, production),
  builds it and checks it. `build_settings()` reads the areas from the environment, applies
  what the environment changes (testing's own database and Redis, the generated
  development and testing secrets) and checks every rule: a value that cannot work stops
  the start with a message that names the variable (and never repeats a secret).
- The config object carries what `app.config.from_object` reads: each setting under its
  variable's name (`DATABASE_URL`, `JOB_TIME_LIMIT`…), the values derived for Flask's
  extensions (`SQLALCHEMY_*`, `JWT_*`, `RATELIMIT_*`, `CELERY`…), and the typed
  `Settings` itself as `SETTINGS`, so `app.config["SETTINGS"]` holds it.
- New code can ask for the typed settings with `get_settings(app)` (or `get_settings()`
  inside an app context): `get_settings(app).queue.time_limit`,
  `get_settings().auth.jwt_secret`. They are read-only; a value changed on a config object
  after it was built (as a test might do) changes only its UPPERCASE copy.

No secret has a default written here (anyone who read it could sign tokens): development
generates one per checkout (config/dev_secrets.py), testing one per process, and
production refuses to start without one.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import types
import typing
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config import dev_secrets

if TYPE_CHECKING:
    from flask import Flask

DEFAULT_ENV_NAME = "development"
MIN_PRODUCTION_SECRET_LENGTH = 32
# Words of values copied from documentation or a template rather than generated: production
# refuses a JWT_SECRET containing one, however long it is.
PLACEHOLDER_MARKERS = (
    "change-me",
    "changeme",
    "change_me",
    "insecure",
    "placeholder",
    "example",
    "dev-only",
    "your-secret",
    "your_secret",
    "xxxxxx",
)
DEFAULT_EMBEDDING_MODELS = "nomic-embed-text"
MAX_MODEL_NAME_LENGTH = 200  # usage_records.model
# The caps on what one account holds at once: each is MAX_<name>_PER_USER and _PER_ADMIN.
ACCOUNT_CAPS = ("OPEN_STREAMS", "CONVERSATIONS", "ACTIVE_BATCHES", "STORED_BATCHES")
# What a setting may say about itself beyond its description (see `setting`).
DOC_KEYS = frozenset({"kind", "default_text", "example", "production", "secret", "commented"})


class ConfigError(RuntimeError):
    """Settings that cannot work: raised at start-up, one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{len(problems)} configuration problems:\n" + "\n".join(
                f"- {problem}" for problem in problems
            )
        super().__init__(message)


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def parse_embedding_models(raw: str) -> dict[str, str]:
    """EMBEDDING_MODELS as {alias: backend model}, in the order given.

    Each comma-separated entry is `alias=backend_model`, or `backend_model` alone (it then
    answers to its own name); blank means the default.
    """
    if not raw.strip():
        raw = DEFAULT_EMBEDDING_MODELS
    models: dict[str, str] = {}
    for number, entry in enumerate(raw.split(","), start=1):
        alias, sep, backend = (part.strip() for part in entry.partition("="))
        if not sep:
            backend = alias
        problem = None
        if not entry.strip():
            problem = "is empty (two commas in a row, or one at an end)"
        elif not alias or not backend or "=" in backend:
            problem = "is not `alias=backend_model` or `backend_model`"
        elif any(c.isspace() for c in alias + backend):
            problem = "has whitespace inside a name"
        elif max(len(alias), len(backend)) > MAX_MODEL_NAME_LENGTH:
            problem = f"has a name longer than {MAX_MODEL_NAME_LENGTH} characters"
        elif alias in models:
            problem = f"repeats the name {alias!r}"
        if problem:
            raise RuntimeError(
                f"EMBEDDING_MODELS entry {number} ({entry.strip()!r}) {problem}: use "
                "comma-separated `alias=backend_model` or `backend_model` entries, e.g. "
                "'nomic-embed-text,text-embedding-3-small=nomic-embed-text'"
            )
        models[alias] = backend
    return models


def sqlalchemy_url(database_url: str) -> str:
    """Pin the psycopg2 driver: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3."""
    for scheme in ("postgresql://", "postgres://"):
        if database_url.startswith(scheme):
            return "postgresql+psycopg2://" + database_url[len(scheme) :]
    return database_url


@functools.cache
def testing_secret() -> str:
    """This process's JWT secret for the testing config, made on first use."""
    return secrets.token_urlsafe(48)


def looks_like_placeholder(secret: str) -> bool:
    """A template's wording ("change-me"…), or one short chunk repeated ("aaaa", "abab")."""
    lowered = secret.lower()
    if any(marker in lowered for marker in PLACEHOLDER_MARKERS):
        return True
    # A generated secret repeats no chunk end to end (for 32 random hex digits the odds
    # are 16**-16).
    return re.fullmatch(r"(.{1,16}?)\1+", secret, re.DOTALL) is not None


# --- declaring settings ----------------------------------------------------------------------


def setting(env: str, default: Any, description: str, **doc: Any) -> Any:
    """A field read from the environment variable `env`, documented by `description`.

    `doc` adds to the generated reference: `kind` (the type in words, when the annotation's
    is not enough), `default_text` (the default in words, when the value alone misleads),
    `example` (a value worth showing), `production` (why production requires it),
    `secret` (never shown or given a value in .env.example) and `commented` (listed
    commented out in .env.example).
    """
    if unknown := set(doc) - DOC_KEYS:
        raise TypeError(f"{env}: unknown documentation keys {sorted(unknown)}")
    return Field(
        default,
        validation_alias=env,
        description=" ".join(description.split()),
        json_schema_extra=doc or None,
        # Kept out of repr(), and so out of logs and tracebacks.
        repr=not doc.get("secret", False),
    )


def env_name_of(field: FieldInfo) -> str:
    return str(field.validation_alias)


def doc_of(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def value_type(annotation: Any) -> Any:
    """int for `int` and `int | None`, `tuple` for `tuple[str, ...]`, and so on."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return value_type(args[0])
    if origin is Annotated:
        return value_type(args[0])
    return origin or annotation


def parse_env_value(name: str, annotation: Any, raw: str) -> Any:
    """A variable's text as its field's type, as the gateway has always read it.

    Numbers: blank means the default; anything else must parse. Lists: comma-separated,
    blanks dropped. Choices: one of the listed values exactly. Text: as given, empty too.
    """
    kind = value_type(annotation)
    if kind in (int, float):
        if not raw.strip():
            raise PydanticUseDefault()
        try:
            return kind(raw)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"{name} must be {what}, got {raw!r}") from None
    if kind is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if kind is Literal:
        choices = typing.get_args(annotation)
        if raw not in choices:
            raise ValueError(f"{name} must be {' or '.join(map(repr, choices))}")
    return raw


def _embedding_models(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_embedding_models(value)
        except RuntimeError as exc:
            raise ValueError(str(exc)) from None
    return value


Names = Annotated[tuple[str, ...], NoDecode]


class SettingsGroup(BaseSettings):
    """The settings of one area, read from the environment when the object is built."""

    model_config = SettingsConfigDict(case_sensitive=True, frozen=True)

    # Shown in the reference: the area's title, what it covers and (for areas the
    # gateway's own processes do not read) which program reads them.
    title: ClassVar[str]
    about: ClassVar[str] = ""
    read_by: ClassVar[str] = ""

    @field_validator("*", mode="before")
    @classmethod
    def _from_environment(cls, value: Any, info) -> Any:
        if not isinstance(value, str):
            return value
        field = cls.model_fields[info.field_name]
        return parse_env_value(env_name_of(field), field.annotation, value)


# --- the gateway's areas -----------------------------------------------------------------------


class DatabaseSettings(SettingsGroup):
    title = "Database (PostgreSQL)"
    about = "Users, conversations, jobs, batches and usage live in PostgreSQL."

    url: str = setting(
        "DATABASE_URL",
        "postgresql://postgres@127.0.0.1:5432/llm_gateway",
        "PostgreSQL's address, reached with psycopg2 (a `postgresql://` URL).",
        kind="URL",
    )
    pool_size: int = setting(
        "DATABASE_POOL_SIZE",
        20,
        "Connections kept open per process (opened as needed). Under gevent every request "
        "in progress holds one, so a pool smaller than the requests an API process serves at "
        "once opens and closes a connection per request beyond it (up to 10 more).",
    )
    connect_timeout: int = setting(
        "DATABASE_CONNECT_TIMEOUT",
        3,
        "Seconds to wait for a new PostgreSQL connection before the request is answered 503.",
    )


class RedisSettings(SettingsGroup):
    title = "Redis"
    about = (
        "Queues, token streams, caches (login sessions' state among them) and rate-limit "
        "counters live in Redis."
    )

    url: str = setting("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis' address.", kind="URL")
    key_prefix: str = setting(
        "REDIS_KEY_PREFIX",
        "gw:",
        "Every Redis key the gateway writes (Celery's and the rate limiter's included) starts "
        "with this, so several deployments can share one Redis.",
    )
    socket_timeout: int = setting(
        "REDIS_SOCKET_TIMEOUT",
        3,
        "Seconds for Redis connects and commands before the request is answered 503.",
    )


class AuthSettings(SettingsGroup):
    title = "Authentication and security"
    about = (
        "Tokens, passwords and API keys, and the limits on logins and registrations "
        "(flask-limiter's syntax: `N/second`, `N/minute`, `N/hour` or `N/day`, counted in "
        "Redis)."
    )

    jwt_secret: str = setting(
        "JWT_SECRET",
        "",
        "Signs the JWTs (HMAC). Production refuses to start without one, or with one shorter "
        "than 32 characters or that looks like a placeholder: generate it, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`. Left empty in "
        "development, the first run (`make dev`, `make run`, a `flask` command) generates one "
        "into `DEV_SECRETS_FILE` and every later run reuses it; testing makes one per process. "
        "The code has none.",
        default_text="none: generated per checkout in development, per process in testing",
        production="the app refuses to start without a long random value",
        secret=True,
    )
    access_token_minutes: int = setting(
        "ACCESS_TOKEN_MINUTES", 15, "Lifetime of an access token, in minutes (at least 1)."
    )
    refresh_token_days: int = setting(
        "REFRESH_TOKEN_DAYS",
        30,
        "Lifetime of a refresh token, in days (at least 1); a login session expires this long "
        "after its last refresh.",
    )
    session_cache_seconds: int = setting(
        "SESSION_CACHE_SECONDS",
        60,
        'Seconds Redis may answer "this login session is active" before PostgreSQL, where '
        "sessions and their revocations live, is asked again (at least 1). A logout or "
        "revocation replaces the cached answer at once; this bounds how long a stale answer "
        "could outlive a revocation whose cache write failed, and costs one PostgreSQL read per "
        "session per period.",
    )
    bcrypt_rounds: int = setting(
        "BCRYPT_ROUNDS",
        12,
        "bcrypt's cost factor for passwords, 4 to 31; each step doubles the time of a login.",
    )
    password_min_length: int = setting(
        "PASSWORD_MIN_LENGTH", 8, "Shortest password accepted, in characters."
    )
    max_api_keys_per_user: int = setting(
        "MAX_API_KEYS_PER_USER", 20, "Active API keys per user (409 above it)."
    )
    login_rate_limit_per_ip: str = setting(
        "LOGIN_RATE_LIMIT_PER_IP", "20/minute", "Login attempts per client IP.", kind="rate limit"
    )
    login_rate_limit_per_email: str = setting(
        "LOGIN_RATE_LIMIT_PER_EMAIL",
        "5/minute",
        "Failed logins per email from one client address (also failed password changes per "
        "user). Only failures count, so users are never locked out by their own logins, and an "
        "attacker elsewhere cannot lock the owner out.",
        kind="rate limit",
    )
    login_rate_limit_per_email_all_ips: str = setting(
        "LOGIN_RATE_LIMIT_PER_EMAIL_ALL_IPS",
        "50/minute",
        "Failed logins per email from all addresses together: slows a guesser spread over "
        "many addresses.",
        kind="rate limit",
    )
    register_rate_limit_per_ip: str = setting(
        "REGISTER_RATE_LIMIT_PER_IP", "10/minute", "Registrations per client IP.", kind="rate limit"
    )

    @property
    def access_token_seconds(self) -> int:
        return self.access_token_minutes * 60

    @property
    def refresh_token_seconds(self) -> int:
        return self.refresh_token_days * 24 * 3600

    @model_validator(mode="after")
    def _check(self) -> AuthSettings:
        if self.access_token_minutes <= 0 or self.refresh_token_days <= 0:
            raise ValueError("ACCESS_TOKEN_MINUTES and REFRESH_TOKEN_DAYS must be positive")
        if self.session_cache_seconds < 1:
            raise ValueError("SESSION_CACHE_SECONDS must be at least 1")
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ValueError("BCRYPT_ROUNDS must be between 4 and 31")
        return self


class ModelSettings(SettingsGroup):
    title = "Models and providers"
    about = (
        "Which model server answers, which model each tier uses, and how much each "
        "generation may take."
    )

    llm_provider: Literal["ollama", "openai"] = setting(
        "LLM_PROVIDER",
        "ollama",
        "`ollama` (langchain-ollama), or `openai`: any OpenAI-compatible server (vLLM, "
        "llama.cpp's server…) at `OPENAI_BASE_URL`.",
    )
    ollama_url: str = setting(
        "OLLAMA_URL", "http://127.0.0.1:11434", "Ollama's address.", kind="URL"
    )
    openai_base_url: str = setting(
        "OPENAI_BASE_URL",
        "",
        "An OpenAI-compatible server (`…/v1`). `make dev` uses it, or else `OLLAMA_URL`, when "
        "it answers, and otherwise starts a local llama.cpp server.",
        kind="URL",
        example="http://127.0.0.1:8000/v1",
    )
    openai_api_key: str = setting(
        "OPENAI_API_KEY",
        "not-needed",
        "The key sent to the OpenAI-compatible server (local servers ignore it).",
    )
    model_light: str = setting("MODEL_LIGHT", "llama3.2:3b", "The light tier's model.")
    model_heavy: str = setting("MODEL_HEAVY", "qwen2.5:7b", "The heavy tier's model.")
    complexity_threshold: int = setting(
        "COMPLEXITY_THRESHOLD",
        100,
        "Characters at which a request's length starts to count towards the heavy tier (one "
        "signal among code, math, analysis wording, questions and context); at least 1.",
    )
    llm_connect_timeout: float = setting(
        "LLM_CONNECT_TIMEOUT", 5.0, "Seconds to connect to the model server."
    )
    llm_read_timeout: float = setting(
        "LLM_READ_TIMEOUT", 60.0, "Seconds to wait for each next token before the job fails."
    )
    llm_connect_retry_seconds: float = setting(
        "LLM_CONNECT_RETRY_SECONDS",
        15.0,
        "Before the first token, how long a model server that refuses connections or answers "
        "503 (restarting, loading its model) is tried again, with a growing pause (0.25 s, "
        "doubling up to 2 s); then the job fails with `model_unavailable`. 0 or more, and "
        "below `JOB_SOFT_TIME_LIMIT`.",
    )
    vision_models: Names = setting(
        "VISION_MODELS",
        (),
        "Models (of `MODEL_LIGHT` / `MODEL_HEAVY`) that take images: a request with image "
        "parts goes to one of them, or is refused with 400.",
        example="llava:7b",
    )
    openai_web_search_models: Names = setting(
        "OPENAI_WEB_SEARCH_MODELS",
        (),
        "Model names a `/v1` request may use (`auto`, `light`, `heavy` or a model) for which "
        "the gateway offers its own web search, run on the worker, when the request brings no "
        "tools of its own.",
        example="heavy",
    )
    system_prompt: str = setting(
        "SYSTEM_PROMPT",
        "You are a helpful assistant. Use the web_search tool for current events or "
        "facts you are unsure of, and answer concisely.",
        "Sent to the model first, before the conversation.",
    )
    embedding_models: Annotated[dict[str, str], NoDecode, BeforeValidator(_embedding_models)] = (
        setting(
            "EMBEDDING_MODELS",
            parse_embedding_models(DEFAULT_EMBEDDING_MODELS),
            "The models of `POST /v1/embeddings`, served by the `LLM_PROVIDER`'s server: "
            "comma-separated `alias=backend_model` entries (clients send the alias, the server "
            "runs the backend model) or `backend_model` alone (it answers to its own name). An "
            "alias may not be a chat model's name (`auto`, `light`, `heavy`, `MODEL_LIGHT`, "
            "`MODEL_HEAVY`). See docs/openai-compatibility.md.",
            kind="list of `alias=backend_model` or `backend_model`",
            example="nomic-embed-text,text-embedding-3-small=nomic-embed-text",
        )
    )
    max_tokens_limit: int = setting(
        "MAX_TOKENS_LIMIT", 4096, "Largest `max_tokens` a request may ask for."
    )
    default_max_tokens: int = setting(
        "DEFAULT_MAX_TOKENS", 1024, "`max_tokens` of a request that names none."
    )
    context_budget_chars: int = setting(
        "CONTEXT_BUDGET_CHARS",
        12_000,
        "Characters of earlier conversation sent with a new message (the newest kept first).",
    )
    agent_max_tool_rounds: int = setting(
        "AGENT_MAX_TOOL_ROUNDS", 2, "Tool rounds (e.g. web searches) before the model must answer."
    )

    @model_validator(mode="after")
    def _check(self) -> ModelSettings:
        if self.complexity_threshold < 1:
            raise ValueError("COMPLEXITY_THRESHOLD must be a positive number of characters")
        chat_names = {"auto", "light", "heavy", self.model_light, self.model_heavy}
        if clashes := sorted(chat_names & set(self.embedding_models)):
            raise ValueError(
                f"EMBEDDING_MODELS names {', '.join(map(repr, clashes))}, already a chat model "
                "name (auto, light, heavy, MODEL_LIGHT, MODEL_HEAVY): GET /v1/models would list "
                "it twice; give the embedding model another alias"
            )
        return self


class QueueSettings(SettingsGroup):
    title = "Jobs, queue and workers"
    about = (
        "Every generation is a job run by a Celery worker: one queue (and worker) per tier, "
        "`light` and `heavy`. Celery keeps no results: a job's outcome lives in PostgreSQL."
    )

    soft_time_limit: int = setting(
        "JOB_SOFT_TIME_LIMIT",
        300,
        "Seconds a job may generate: then it stops and fails with `time_limit_exceeded`. At "
        "most `JOB_TIME_LIMIT`.",
    )
    time_limit: int = setting(
        "JOB_TIME_LIMIT", 330, "Celery's hard limit: seconds after which a job's thread is killed."
    )
    max_attempts: int = setting(
        "JOB_MAX_ATTEMPTS", 3, "Deliveries of one job (its worker died) before it fails."
    )
    broker_visibility_timeout: int = setting(
        "BROKER_VISIBILITY_TIMEOUT",
        900,
        "Seconds before a message not acknowledged (its worker died) is delivered again. Must "
        "be above `JOB_TIME_LIMIT`, or a slow job would run twice.",
    )
    lock_ttl: int = setting(
        "JOB_LOCK_TTL",
        30,
        "A running job holds a lock renewed by its worker: when the worker dies the lock "
        "lapses after this many seconds, and a redelivered copy may take over.",
    )
    reconcile_interval_seconds: int = setting(
        "RECONCILE_INTERVAL_SECONDS",
        30,
        "How often the reconciler runs (in every worker process, one at a time). It puts back "
        "on their queue the queued jobs whose message Redis lost and the running jobs whose "
        "worker is gone (no lock), instead of waiting for the broker's visibility timeout. "
        "0 turns it off.",
    )
    worker_redis_retry_seconds: int = setting(
        "WORKER_REDIS_RETRY_SECONDS",
        30,
        "How long a worker's Redis calls retry while Redis is away (e.g. restarting) before "
        "the job fails. The API does not wait: it answers 503.",
    )
    celery_broker_url: str = setting(
        "CELERY_BROKER_URL",
        "",
        "Celery's broker; empty means `REDIS_URL`.",
        kind="URL",
        default_text="`REDIS_URL`",
    )
    worker_concurrency_light: int = setting(
        "WORKER_CONCURRENCY_LIGHT",
        4,
        "Jobs the light queue's worker runs at once (`make dev` and docker compose). Match the "
        "model server's parallel slots for the tier: more jobs than it runs in parallel only "
        "wait inside it, past their time limits, instead of waiting visibly in the queue "
        "(compose sets Ollama's `OLLAMA_NUM_PARALLEL` from this).",
    )
    worker_concurrency_heavy: int = setting(
        "WORKER_CONCURRENCY_HEAVY",
        2,
        "Jobs the heavy queue's worker runs at once (`make dev` and docker compose).",
    )

    @model_validator(mode="after")
    def _check(self) -> QueueSettings:
        if self.broker_visibility_timeout <= self.time_limit:
            raise ValueError(
                "BROKER_VISIBILITY_TIMEOUT must be above JOB_TIME_LIMIT, or long jobs run twice"
            )
        if self.soft_time_limit > self.time_limit:
            raise ValueError("JOB_SOFT_TIME_LIMIT must not exceed JOB_TIME_LIMIT")
        return self


class StreamingSettings(SettingsGroup):
    title = "Token streams and SSE"
    about = "A job's events go through a Redis stream, which clients read as Server-Sent Events."

    stream_maxlen: int = setting("STREAM_MAXLEN", 20_000, "Entries kept per job's stream.")
    stream_ttl_seconds: int = setting(
        "STREAM_TTL_SECONDS",
        3600,
        "How long a finished job's event stream stays replayable in Redis (then it is rebuilt "
        "from PostgreSQL).",
    )
    sse_heartbeat_seconds: float = setting(
        "SSE_HEARTBEAT_SECONDS", 15.0, "Seconds between heartbeat comments on an open stream."
    )
    chat_wait_seconds: float = setting(
        "CHAT_WAIT_SECONDS",
        120.0,
        "How long `POST /api/chat/` waits for the answer before a 504 with the job's id (the "
        "job goes on).",
    )


class SearchSettings(SettingsGroup):
    title = "Web search"
    about = "The agent's `web_search` tool, run on the workers."

    backend: str = setting(
        "SEARCH_BACKEND",
        "ddgs",
        "`ddgs` (DuckDuckGo and friends), or `module:factory` returning a search backend "
        "(tests inject one).",
    )
    timeout: float = setting("SEARCH_TIMEOUT", 8.0, "Seconds a search may take.")
    max_results: int = setting("SEARCH_MAX_RESULTS", 5, "Results given to the model per search.")
    cache_ttl: int = setting(
        "SEARCH_CACHE_TTL", 600, "Seconds a search's results are cached in Redis."
    )


class LimitSettings(SettingsGroup):
    title = "Request limits and quotas"
    about = (
        "What one request may carry, and what one identity may use per minute and per day. "
        "Answers above a limit are 429s with `Retry-After`, or 413/422 for requests too large."
    )

    max_message_chars: int = setting(
        "MAX_MESSAGE_CHARS", 32_000, "Longest message, in characters (422 above it)."
    )
    rate_limit_user_per_minute: int = setting(
        "RATE_LIMIT_USER_PER_MINUTE",
        120,
        "Requests per minute per identity of a user (a user's tokens share one budget; each "
        'API key has its own). `PATCH /api/admin/users/<id> {"rate_limit_per_minute": N}` '
        "overrides it per user. `X-RateLimit-Limit/-Remaining/-Reset` are on every "
        "authenticated response.",
    )
    rate_limit_admin_per_minute: int = setting(
        "RATE_LIMIT_ADMIN_PER_MINUTE", 1200, "The same for an admin's identities."
    )
    max_jobs_in_flight: int = setting(
        "MAX_JOBS_IN_FLIGHT",
        10,
        "Queued and running jobs per user at once (429 `too_many_jobs_in_flight`); 0: no cap.",
    )
    daily_token_quota: int = setting(
        "DAILY_TOKEN_QUOTA",
        0,
        "Prompt + completion tokens generated for a user per UTC day, from the usage log; "
        "answers served from the cache do not count (429 `daily_token_quota_exceeded`). "
        "0: no quota.",
    )
    usage_retention_days: int = setting(
        "USAGE_RETENTION_DAYS", 90, "Days of usage records kept by `flask usage-cleanup`."
    )
    batch_max_requests: int = setting("BATCH_MAX_REQUESTS", 10_000, "Requests per batch.")
    batch_max_bytes: int = setting(
        "BATCH_MAX_BYTES",
        20 * 1024 * 1024,
        "Largest batch body in bytes (JSON or JSONL upload); other requests keep "
        "`MAX_CONTENT_LENGTH`, and nginx must allow it on `/api/batches`.",
    )


class AccountCapSettings(SettingsGroup):
    title = "What one account may hold at once"
    about = (
        "Without these caps one account could take a resource every account shares: the "
        "API's connections, PostgreSQL's rows, the queues. Each is by role (`_PER_USER` / "
        "`_PER_ADMIN`): admins get more (they test and operate the deployment) but still a "
        "bound, as a stolen admin key is no exception. 0 means no cap."
    )

    max_open_streams_per_user: int = setting(
        "MAX_OPEN_STREAMS_PER_USER",
        20,
        "Open event streams per account, on every streaming endpoint and over all API "
        "processes (counted in Redis; API keys count under their user): 429 "
        "`too_many_streams` before anything is submitted. Each holds a connection of an API "
        "process for as long as its client likes, e.g. on a job that hangs; 20 lets a user "
        "follow each of `MAX_JOBS_IN_FLIGHT` jobs from two places at once.",
    )
    max_open_streams_per_admin: int = setting(
        "MAX_OPEN_STREAMS_PER_ADMIN", 100, "The same for an admin."
    )
    stream_lease_ttl_seconds: int = setting(
        "STREAM_LEASE_TTL_SECONDS",
        30,
        "A stream is counted by a lease in Redis that its API process renews every third of "
        "this: the streams of a process that died (kill -9, a lost host) stop counting after "
        "it. A client that leaves stops counting at the next heartbeat. At least 2.",
    )
    max_conversations_per_user: int = setting(
        "MAX_CONVERSATIONS_PER_USER",
        10_000,
        "Stored conversations per account, with all their messages; a new one past it (also "
        "a message sent without `conversation_id`) is a 409 `too_many_conversations`. "
        "Deleting one makes room.",
    )
    max_conversations_per_admin: int = setting(
        "MAX_CONVERSATIONS_PER_ADMIN", 100_000, "The same for an admin."
    )
    max_active_batches_per_user: int = setting(
        "MAX_ACTIVE_BATCHES_PER_USER",
        5,
        "Batches queued or running per account (429 `too_many_active_batches`): each may hold "
        "`BATCH_MAX_REQUESTS` jobs, which wait behind interactive jobs but would still fill "
        "the queues.",
    )
    max_active_batches_per_admin: int = setting(
        "MAX_ACTIVE_BATCHES_PER_ADMIN", 20, "The same for an admin."
    )
    max_stored_batches_per_user: int = setting(
        "MAX_STORED_BATCHES_PER_USER",
        100,
        "Batches kept with their results per account, ended or not, until deleted (409 "
        "`too_many_batches`; `DELETE /api/batches/<id>` of an ended batch makes room).",
    )
    max_stored_batches_per_admin: int = setting(
        "MAX_STORED_BATCHES_PER_ADMIN", 1000, "The same for an admin."
    )

    @model_validator(mode="after")
    def _check(self) -> AccountCapSettings:
        for name in ACCOUNT_CAPS:
            for role in ("USER", "ADMIN"):
                if getattr(self, f"max_{name}_per_{role}".lower()) < 0:
                    raise ValueError(f"MAX_{name}_PER_{role} must be 0 (no cap) or more")
        if self.stream_lease_ttl_seconds < 2:
            # Renewed every third of it: below 2 s a short pause of the process lets it lapse.
            raise ValueError("STREAM_LEASE_TTL_SECONDS must be at least 2")
        return self


class CacheSettings(SettingsGroup):
    title = "Response cache"
    about = (
        "Answers are cached in Redis, and identical requests in progress share one "
        "generation (single flight). Clients bypass it per request with "
        "`Cache-Control: no-cache` (generate anew, then store) or `no-store` (neither read "
        "nor write)."
    )

    ttl_seconds: int = setting(
        "CACHE_TTL_SECONDS",
        3600,
        "Seconds an answer stays cached; 0 turns the cache and single flight off.",
    )
    scope: Literal["global", "user"] = setting(
        "CACHE_SCOPE",
        "global",
        "`global`: identical requests (same model, messages, context and parameters) share "
        "one answer across users; `user`: answers are shared only within one account.",
    )

    @model_validator(mode="after")
    def _check(self) -> CacheSettings:
        if self.ttl_seconds < 0:
            raise ValueError("CACHE_TTL_SECONDS must be 0 (off) or more")
        return self


class ObservabilitySettings(SettingsGroup):
    title = "Logs and metrics"

    log_level: str = setting("LOG_LEVEL", "INFO", "The root logger's level.")
    metrics_token: str = setting(
        "METRICS_TOKEN",
        "",
        "Bearer token a Prometheus scraper sends to `GET /metrics`, required from anywhere "
        "when set. Empty: served only to this host's loopback, never through a proxy, so a "
        "scraper on another host or container (compose) needs it. Generate it like "
        "`JWT_SECRET`.",
        secret=True,
    )


class ServerSettings(SettingsGroup):
    title = "HTTP"

    max_content_length: int = setting(
        "MAX_CONTENT_LENGTH",
        1024 * 1024,
        "Largest request body in bytes (413 above it). Keep nginx's `client_max_body_size` equal.",
    )
    proxy_fix_hops: int = setting(
        "PROXY_FIX_HOPS",
        0,
        "How many proxies in front set `X-Forwarded-For` (1 behind nginx); 0 trusts none. "
        "Client IPs in rate limits and logs come from this.",
    )
    swagger_ui_url: str = setting(
        "SWAGGER_UI_URL",
        "/docs/assets/",
        "Where the Swagger UI page at `/docs` loads its JavaScript and CSS from; the default "
        "serves the copy installed with the gateway, so `/docs` works offline.",
    )

    @model_validator(mode="after")
    def _check(self) -> ServerSettings:
        if self.max_content_length <= 0:
            raise ValueError("MAX_CONTENT_LENGTH must be positive")
        return self


# --- read by other programs: declared here so every variable is documented in one place -------


class EnvironmentSettings(SettingsGroup):
    title = "Environment"
    about = (
        "Which configuration applies. Development and testing generate their own secrets; "
        "testing also uses its own database, Redis db and key prefix (see Tests below)."
    )
    read_by = "the configuration loader (config/settings.py, config/dev_secrets.py)"

    app_env: str = setting(
        "APP_ENV",
        DEFAULT_ENV_NAME,
        "Which configuration applies (case and surrounding spaces do not matter). Production "
        "refuses to start without a long random `JWT_SECRET`.",
        kind="`development`, `testing` or `production`",
    )
    dev_secrets_file: str = setting(
        "DEV_SECRETS_FILE",
        dev_secrets.FILE_NAME,
        "Development only: the file of this checkout's generated secrets (`JWT_SECRET`, and "
        "`FLOWER_BASIC_AUTH` for `make dev`), mode 0600 and git-ignored. Relative to the "
        "checkout.",
    )


class GunicornSettings(SettingsGroup):
    title = "API server (gunicorn)"
    read_by = "gunicorn (config/gunicorn.conf.py)"

    bind: str = setting("GUNICORN_BIND", "0.0.0.0:8000", "Listen address.")
    web_concurrency: int = setting("WEB_CONCURRENCY", 2, "gunicorn worker processes.")
    worker_class: str = setting(
        "GUNICORN_WORKER_CLASS",
        "gevent",
        "`gevent`: a greenlet per request, so one process holds many open streams; `gthread` "
        "(a thread per request) also works.",
    )
    worker_connections: int = setting(
        "GUNICORN_WORKER_CONNECTIONS",
        2000,
        "Open connections per gevent worker: each SSE stream holds one until it ends (a "
        "process's streams share one Redis reader). The open-file limit must allow them.",
    )
    threads: int = setting(
        "GUNICORN_THREADS", 8, "Threads per worker, with `GUNICORN_WORKER_CLASS=gthread` only."
    )
    timeout: int = setting(
        "GUNICORN_TIMEOUT",
        60,
        "Seconds without a heartbeat before a worker is restarted (a blocked event loop, not "
        "a long stream).",
    )
    graceful_timeout: int = setting(
        "GUNICORN_GRACEFUL_TIMEOUT",
        30,
        "Seconds open requests get after SIGTERM; streams still open then are closed and "
        "their clients resume elsewhere with `Last-Event-ID`. Keep it below the "
        "orchestrator's kill delay.",
    )
    keepalive: int = setting(
        "GUNICORN_KEEPALIVE",
        75,
        "Seconds an idle keep-alive connection stays open (above nginx's upstream idle time).",
    )


class FlowerSettings(SettingsGroup):
    title = "Flower (queue monitoring)"
    about = "Flower reads every `FLOWER_*` variable as its option of that name."
    read_by = "Flower (`make dev`, docker compose)"

    basic_auth: str = setting(
        "FLOWER_BASIC_AUTH",
        "",
        "Flower's login, `user:password`. When unset, `make dev` uses the one generated once "
        "into `DEV_SECRETS_FILE` (it prints where, never the password).",
        default_text="none: generated once per checkout for `make dev`",
        production="docker compose refuses to start without it",
        secret=True,
    )
    address: str = setting(
        "FLOWER_ADDRESS",
        "127.0.0.1",
        "Where `make dev` serves Flower (the compose file sets its own: `0.0.0.0:5555`, under "
        "`/flower/`).",
    )
    port: int = setting("FLOWER_PORT", 5555, "Flower's port under `make dev`.")


class LocalStackSettings(SettingsGroup):
    title = "Local development stack (`make dev`)"
    about = (
        "`make dev` runs the whole stack under supervisord, with a local llama.cpp server and "
        "SmolLM2-135M when neither `OPENAI_BASE_URL` nor `OLLAMA_URL` answers."
    )
    read_by = "`make dev` (scripts/dev.py, scripts/local_llm.py)"

    local_llm_host: str = setting(
        "LOCAL_LLM_HOST", "127.0.0.1", "Address of the local model server."
    )
    local_llm_port: int = setting("LOCAL_LLM_PORT", 8081, "Port of the local model server.")
    local_llm_threads: int = setting(
        "LOCAL_LLM_THREADS", 2, "CPU threads of the local model server."
    )
    local_llm_parallel: int | None = setting(
        "LOCAL_LLM_PARALLEL",
        None,
        "Requests the local model server generates at once (continuous batching); more wait "
        "in its queue. Empty: one per worker thread of both queues.",
        default_text="`WORKER_CONCURRENCY_LIGHT` + `WORKER_CONCURRENCY_HEAVY`",
    )
    dev_run_dir: str = setting(
        "DEV_RUN_DIR",
        ".run/dev",
        "Where `make dev` keeps supervisord's configuration, control socket and every "
        "process's log.",
    )


class ComposeSettings(SettingsGroup):
    title = "Docker compose"
    about = (
        "The compose file sets `APP_ENV=production`, `PROXY_FIX_HOPS=1` and the services' "
        "addresses itself, and passes `.env` to every app container."
    )
    read_by = "docker compose (docker-compose.yml)"

    http_port: int = setting("HTTP_PORT", 80, "The host port nginx publishes.")
    postgres_password: str = setting(
        "POSTGRES_PASSWORD",
        "",
        "The compose stack's PostgreSQL password (also put into the apps' `DATABASE_URL`).",
        default_text="none",
        production="docker compose refuses to start without it",
        secret=True,
    )


class TestSettings(SettingsGroup):
    """What the testing config uses instead of the development database, Redis and cost."""

    __test__ = False  # not a pytest test class, despite the name

    title = "Tests"
    about = (
        "The testing configuration (`APP_ENV=testing`) ignores `DATABASE_URL`, `REDIS_URL`, "
        "`REDIS_KEY_PREFIX` and `BCRYPT_ROUNDS` and reads these instead, so tests never touch "
        "development data. Unset, each pytest run creates its own database "
        "`llm_gateway_test_<pid>` and key prefix `gwtest:<pid>:`."
    )
    read_by = "the testing configuration and the test suite"

    database_url: str = setting(
        "TEST_DATABASE_URL",
        "postgresql://postgres@127.0.0.1:5432/llm_gateway_test",
        "The testing configuration's PostgreSQL.",
        kind="URL",
        commented=True,
    )
    redis_url: str = setting(
        "TEST_REDIS_URL",
        "redis://127.0.0.1:6379/15",
        "The testing configuration's Redis.",
        kind="URL",
        commented=True,
    )
    redis_key_prefix: str = setting(
        "TEST_REDIS_KEY_PREFIX",
        "gwtest:",
        "The testing configuration's key prefix.",
        commented=True,
    )
    bcrypt_rounds: int = setting(
        "TEST_BCRYPT_ROUNDS",
        4,
        "The testing configuration's bcrypt cost: fast hashes, as the rules under test do not "
        "depend on it.",
        commented=True,
    )


class Settings(BaseModel):
    """The gateway's settings, by area: `settings.queue.time_limit`, `settings.auth.jwt_secret`."""

    model_config = ConfigDict(frozen=True)

    env_name: Literal["development", "testing", "production"]
    database: DatabaseSettings
    redis: RedisSettings
    auth: AuthSettings
    models: ModelSettings
    queue: QueueSettings
    streaming: StreamingSettings
    search: SearchSettings
    limits: LimitSettings
    caps: AccountCapSettings
    cache: CacheSettings
    observability: ObservabilitySettings
    server: ServerSettings

    @property
    def broker_url(self) -> str:
        """CELERY_BROKER_URL, or REDIS_URL when it is empty."""
        return self.queue.celery_broker_url or self.redis.url

    def by_variable(self) -> dict[str, Any]:
        """Each setting under its environment variable's name, as `app.config` holds them."""
        values = {}
        for name in APP_GROUPS:
            group = getattr(self, name)
            for field_name, field in type(group).model_fields.items():
                values[env_name_of(field)] = getattr(group, field_name)
        return values

    @model_validator(mode="after")
    def _check_across_areas(self) -> Settings:
        if not 0 <= self.models.llm_connect_retry_seconds < self.queue.soft_time_limit:
            raise ValueError(
                "LLM_CONNECT_RETRY_SECONDS must be 0 or more and below JOB_SOFT_TIME_LIMIT"
            )
        return self

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.env_name != "production":
            return self
        # The messages never repeat the value: start-up errors end up in logs.
        how = (
            "set JWT_SECRET to a random value (for example `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`) before starting in production"
        )
        secret = self.auth.jwt_secret
        if not secret.strip():
            raise ValueError(f"JWT_SECRET is missing (production has no default): {how}")
        if looks_like_placeholder(secret):
            raise ValueError(
                "JWT_SECRET looks like a placeholder, not a generated value (a template's "
                f"wording, or one short pattern repeated): {how}"
            )
        if len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
            raise ValueError(
                f"JWT_SECRET is too short: use at least {MIN_PRODUCTION_SECRET_LENGTH} characters"
            )
        return self


# The areas of Settings (its field names), in order, and every area the reference lists.
APP_GROUPS: dict[str, type[SettingsGroup]] = {
    name: field.annotation
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, SettingsGroup)
}
DOCUMENTED_GROUPS: tuple[type[SettingsGroup], ...] = (
    EnvironmentSettings,
    *APP_GROUPS.values(),
    GunicornSettings,
    FlowerSettings,
    LocalStackSettings,
    ComposeSettings,
    TestSettings,
)


# --- building the settings ---------------------------------------------------------------------


def problems_of(error: ValidationError) -> list[str]:
    """One line per problem, naming the variable; never the rejected value itself."""
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        cause = (item.get("ctx") or {}).get("error")
        text = str(cause) if item["type"] == "value_error" and cause else item["msg"]
        problems.append(text if not name or name in text else f"{name}: {text}")
    return problems


def _build(group: type[SettingsGroup], problems: list[str], **values: Any) -> Any:
    """The area read from the environment (`values` win over it), or None with its problems."""
    try:
        return group(**values)
    except ValidationError as error:
        problems.extend(problems_of(error))
        return None


def build_settings(env_name: str = DEFAULT_ENV_NAME) -> Settings:
    """The settings of `env_name`, read from the environment and checked.

    Raises ConfigError (a RuntimeError) listing every value that cannot work.
    """
    problems: list[str] = []
    overrides: dict[type[SettingsGroup], dict[str, Any]] = {}
    if env_name == "testing":
        # Own database, Redis db and key prefix, so tests never touch development data.
        tests = _build(TestSettings, problems)
        if tests is not None:
            overrides = {
                DatabaseSettings: {"DATABASE_URL": tests.database_url},
                RedisSettings: {
                    "REDIS_URL": tests.redis_url,
                    "REDIS_KEY_PREFIX": tests.redis_key_prefix,
                },
                AuthSettings: {"BCRYPT_ROUNDS": tests.bcrypt_rounds},
            }
    groups = {
        name: _build(group, problems, **overrides.get(group, {}))
        for name, group in APP_GROUPS.items()
    }
    if problems:
        raise ConfigError(problems)
    auth: AuthSettings = groups["auth"]
    if not auth.jwt_secret.strip() and env_name != "production":
        if env_name == "testing":
            # Into the checkout's file would be a test writing outside its own space: one
            # random secret per process instead. Processes that must accept each other's
            # tokens (the servers a test run starts) are given JWT_SECRET.
            secret = testing_secret()
        else:
            # Generated once per checkout and kept, so every process and restart agrees.
            secret = dev_secrets.ensure(dev_secrets.path_from())["JWT_SECRET"]
        groups["auth"] = auth.model_copy(update={"jwt_secret": secret})
    try:
        return Settings(env_name=env_name, **groups)
    except ValidationError as error:
        raise ConfigError(problems_of(error)) from None


def flask_config(settings: Settings) -> dict[str, Any]:
    """What `app.config` holds: every setting by its variable's name, and what derives."""
    config = settings.by_variable()
    prefix = settings.redis.key_prefix
    # Celery's broker keys are under REDIS_KEY_PREFIX too, so deployments and test runs
    # sharing a Redis never meet.
    celery_prefix = {"global_keyprefix": f"{prefix}celery:"}
    config.update(
        SETTINGS=settings,
        CELERY_BROKER_URL=settings.broker_url,
        # Flask extensions read these names; they derive from the gateway's own variables.
        SQLALCHEMY_DATABASE_URI=sqlalchemy_url(settings.database.url),
        SQLALCHEMY_ENGINE_OPTIONS={
            "pool_pre_ping": True,
            "pool_size": settings.database.pool_size,
            "connect_args": {"connect_timeout": settings.database.connect_timeout},
        },
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        SECRET_KEY=settings.auth.jwt_secret,
        JWT_SECRET_KEY=settings.auth.jwt_secret,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_ACCESS_TOKEN_EXPIRES=settings.auth.access_token_seconds,
        JWT_REFRESH_TOKEN_EXPIRES=settings.auth.refresh_token_seconds,
        JWT_TOKEN_LOCATION=["headers"],
        RATELIMIT_STORAGE_URI=settings.redis.url,
        # Rate-limit counters live under REDIS_KEY_PREFIX like every other gateway key.
        RATELIMIT_STORAGE_OPTIONS={"key_prefix": f"{prefix}limits"},
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_STRATEGY="fixed-window",
        # Celery (read by api.queue.celery_init_app).
        CELERY={
            "broker_url": settings.broker_url,
            # No result backend: a job's outcome lives in PostgreSQL. A configured one
            # cost every submit a backend object per greenlet (~1 ms of CPU, most of it
            # reading package metadata for its client name), for results nobody reads.
            "result_backend": None,
            "broker_transport_options": {
                "visibility_timeout": settings.queue.broker_visibility_timeout,
                # Look for messages of dead workers every few seconds (kombu's default
                # sweeps only every ~100 s), so a redelivery follows its timeout closely.
                "unacked_restore_interval": 5,
                "unacked_restore_throttle": 1,
                **celery_prefix,
            },
            # A job is acknowledged only when it has finished, and given back to the queue
            # if its worker dies, so a crash never loses it.
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            # One job at a time per free slot: a busy worker must not hoard queued jobs.
            "worker_prefetch_multiplier": 1,
            # Routing by task name (task_routes, task_default_queue) is set with the task
            # names themselves, in pipeline/queue.py.
            "task_soft_time_limit": settings.queue.soft_time_limit,
            "task_time_limit": settings.queue.time_limit,
            "task_serializer": "json",
            "accept_content": ["json"],
            "worker_hijack_root_logger": False,
            # Flower follows tasks from their workers' events. No "task-sent" event from
            # the API: it cost every submit a publish (docs/benchmarks.md), and what waits
            # in a queue is counted by Flower's broker view and /api/metrics.
            "worker_send_task_events": True,
            "task_send_sent_event": False,
            "broker_connection_retry_on_startup": True,
        },
        API_TITLE="LLM Gateway",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=settings.server.swagger_ui_url,
        PROPAGATE_EXCEPTIONS=False,
    )
    return config


# --- the config objects Flask reads ------------------------------------------------------------


class Config:
    """What `app.config.from_object` reads: every UPPERCASE attribute, `SETTINGS` included.

    Built from the environment of the class's ENV_NAME (see build_settings): a value that
    cannot work raises ConfigError when the object is built.
    """

    ENV_NAME = DEFAULT_ENV_NAME
    TESTING = False
    DEBUG = False

    def __init__(self) -> None:
        self.SETTINGS: Settings = build_settings(self.ENV_NAME)
        for name, value in flask_config(self.SETTINGS).items():
            setattr(self, name, value)

    def validate(self) -> None:
        """Kept for callers: every rule was checked when the settings were built."""


class DevelopmentConfig(Config):
    ENV_NAME = "development"


class TestingConfig(Config):
    """Own database, Redis db and key prefix, so tests never touch development data."""

    ENV_NAME = "testing"
    TESTING = True
    __test__ = False  # not a pytest test class, despite the name


class ProductionConfig(Config):
    ENV_NAME = "production"


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None) -> Config:
    """Build the config named by `name` or APP_ENV and check it."""
    name = (name or env_str("APP_ENV", "") or DEFAULT_ENV_NAME).strip().lower()
    try:
        config_class = CONFIGS[name]
    except KeyError as exc:
        raise RuntimeError(f"APP_ENV must be one of {', '.join(CONFIGS)}, got {name!r}") from exc
    config = config_class()
    config.validate()
    return config


def get_settings(app: Flask | None = None) -> Settings:
    """The typed settings of `app`, or of the current Flask app when none is given.

    `app.config.from_object(config)` (create_app) copies them from the config's SETTINGS.
    """
    if app is None:
        from flask import current_app

        app = current_app
    try:
        return app.config["SETTINGS"]
    except KeyError:
        raise RuntimeError(
            "this app's config has no SETTINGS: build it with create_app(), whose config "
            "comes from config.settings.load_config()"
        ) from None
