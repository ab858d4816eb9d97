"""Configuration classes, read from environment variables with typed defaults.

Every variable is documented in `.env.example`. `load_config()` picks the class named by
APP_ENV (development, testing, production).
"""

from __future__ import annotations

import functools
import os
import re
import secrets

from config import dev_secrets

# No secret has a default written here (anyone who read it could sign tokens): development
# generates one per checkout (config/dev_secrets.py), testing one per process, and
# production refuses to start without one.
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


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_parsed(name: str, default, parse, kind: str):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be {kind}, got {raw!r}") from exc


def env_int(name: str, default: int) -> int:
    return _env_parsed(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    return _env_parsed(name, default, float, "a number")


def env_names(name: str, default: str = "") -> tuple[str, ...]:
    """A comma-separated list of names (blanks dropped)."""
    return tuple(part.strip() for part in env_str(name, default).split(",") if part.strip())


DEFAULT_EMBEDDING_MODELS = "nomic-embed-text"
MAX_MODEL_NAME_LENGTH = 200  # usage_records.model
# The caps on what one account holds at once: each is MAX_<name>_PER_USER and _PER_ADMIN.
ACCOUNT_CAPS = ("OPEN_STREAMS", "CONVERSATIONS", "ACTIVE_BATCHES", "STORED_BATCHES")


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


class Config:
    """Base settings. Values are read from the environment when the object is built."""

    ENV_NAME = "development"
    TESTING = False
    DEBUG = False

    def __init__(self) -> None:
        # --- storage ---------------------------------------------------------------
        self.DATABASE_URL = env_str(
            "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/llm_gateway"
        )
        # Connections kept open per process. Under gevent every request in progress holds
        # one, so a pool smaller than the requests an API process serves at once opens and
        # closes a connection per request beyond it (up to 10 more).
        self.DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 20)
        self.DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 3)
        self.REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
        # Every key the gateway writes starts with this, so deployments can share a Redis.
        self.REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "gw:")
        self.REDIS_SOCKET_TIMEOUT = env_int("REDIS_SOCKET_TIMEOUT", 3)

        # --- auth ------------------------------------------------------------------
        # Empty: development takes the checkout's generated secret, testing makes one per
        # process, production refuses to start (see the subclasses).
        self.JWT_SECRET = env_str("JWT_SECRET", "")
        self.ACCESS_TOKEN_MINUTES = env_int("ACCESS_TOKEN_MINUTES", 15)
        self.REFRESH_TOKEN_DAYS = env_int("REFRESH_TOKEN_DAYS", 30)
        # Seconds Redis may answer "this login session is active" without PostgreSQL being
        # asked. Revocations overwrite the cached answer at once; the TTL bounds how long a
        # stale "active" could outlive a revocation whose cache write failed, and costs one
        # PostgreSQL read per session per TTL. Revocations themselves live in PostgreSQL.
        self.SESSION_CACHE_SECONDS = env_int("SESSION_CACHE_SECONDS", 60)
        self.BCRYPT_ROUNDS = env_int("BCRYPT_ROUNDS", 12)
        self.PASSWORD_MIN_LENGTH = env_int("PASSWORD_MIN_LENGTH", 8)
        self.MAX_API_KEYS_PER_USER = env_int("MAX_API_KEYS_PER_USER", 20)

        # --- rate limits (flask-limiter syntax, counted in Redis) ----------------------
        self.LOGIN_RATE_LIMIT_PER_IP = env_str("LOGIN_RATE_LIMIT_PER_IP", "20/minute")
        # Both count failed attempts only, so users are never locked out by their own
        # successful logins. Per email from one client address: an attacker elsewhere
        # cannot lock the owner out with it.
        self.LOGIN_RATE_LIMIT_PER_EMAIL = env_str("LOGIN_RATE_LIMIT_PER_EMAIL", "5/minute")
        # Per email from all addresses together: slows a guesser spread over many.
        self.LOGIN_RATE_LIMIT_PER_EMAIL_ALL_IPS = env_str(
            "LOGIN_RATE_LIMIT_PER_EMAIL_ALL_IPS", "50/minute"
        )
        self.REGISTER_RATE_LIMIT_PER_IP = env_str("REGISTER_RATE_LIMIT_PER_IP", "10/minute")

        # --- models and routing -------------------------------------------------------
        # Characters above which length alone pushes a request towards the heavy tier.
        self.COMPLEXITY_THRESHOLD = env_int("COMPLEXITY_THRESHOLD", 100)
        self.MODEL_LIGHT = env_str("MODEL_LIGHT", "llama3.2:3b")
        self.MODEL_HEAVY = env_str("MODEL_HEAVY", "qwen2.5:7b")
        self.LLM_PROVIDER = env_str("LLM_PROVIDER", "ollama")  # ollama | openai
        self.OLLAMA_URL = env_str("OLLAMA_URL", "http://127.0.0.1:11434")
        self.OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "")
        self.OPENAI_API_KEY = env_str("OPENAI_API_KEY", "not-needed")
        # Seconds to connect, and to wait for each next token, before the job fails.
        self.LLM_CONNECT_TIMEOUT = env_float("LLM_CONNECT_TIMEOUT", 5.0)
        self.LLM_READ_TIMEOUT = env_float("LLM_READ_TIMEOUT", 60.0)
        # Before the first token, a model server that refuses connections or answers 503
        # (restarting, loading its model) is tried again for this many seconds.
        self.LLM_CONNECT_RETRY_SECONDS = env_float("LLM_CONNECT_RETRY_SECONDS", 15.0)
        # Models (MODEL_LIGHT / MODEL_HEAVY values) that take images: a request with image
        # parts goes to one of them, or is refused with 400.
        self.VISION_MODELS = env_names("VISION_MODELS")
        # Names a /v1 request may use (auto, light, heavy or a model) for which the gateway
        # offers its own web search, run on the worker, when the request brings no tools.
        self.OPENAI_WEB_SEARCH_MODELS = env_names("OPENAI_WEB_SEARCH_MODELS")
        self.SYSTEM_PROMPT = env_str(
            "SYSTEM_PROMPT",
            "You are a helpful assistant. Use the web_search tool for current events or "
            "facts you are unsure of, and answer concisely.",
        )

        # --- embeddings (POST /v1/embeddings) ------------------------------------------
        # Comma-separated `alias=backend_model` or `backend_model` entries, parsed into
        # {name clients send: model the server runs}, on the LLM_PROVIDER's server.
        self.EMBEDDING_MODELS = parse_embedding_models(
            env_str("EMBEDDING_MODELS", DEFAULT_EMBEDDING_MODELS)
        )

        # --- jobs ---------------------------------------------------------------------
        self.MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 32_000)
        self.MAX_TOKENS_LIMIT = env_int("MAX_TOKENS_LIMIT", 4096)
        self.DEFAULT_MAX_TOKENS = env_int("DEFAULT_MAX_TOKENS", 1024)
        # Characters of earlier conversation sent with a new message (newest kept first).
        self.CONTEXT_BUDGET_CHARS = env_int("CONTEXT_BUDGET_CHARS", 12_000)
        self.AGENT_MAX_TOOL_ROUNDS = env_int("AGENT_MAX_TOOL_ROUNDS", 2)
        # Soft limit: the job stops generating and fails with time_limit_exceeded.
        self.JOB_SOFT_TIME_LIMIT = env_int("JOB_SOFT_TIME_LIMIT", 300)
        self.JOB_TIME_LIMIT = env_int("JOB_TIME_LIMIT", 330)
        self.JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3)
        # A message not acknowledged for this long is delivered again (worker died).
        # Must stay above JOB_TIME_LIMIT, or a slow job would run twice.
        self.BROKER_VISIBILITY_TIMEOUT = env_int("BROKER_VISIBILITY_TIMEOUT", 900)
        # A running job holds a lock renewed by its worker; when the worker dies the lock
        # lapses after this many seconds and a redelivered copy may take over.
        self.JOB_LOCK_TTL = env_int("JOB_LOCK_TTL", 30)
        # Every worker process runs the reconciler this often (one at a time): it puts back
        # on their queue the jobs whose message was lost (Redis lost its data) and the
        # running jobs whose worker is gone (no lock), instead of waiting for the broker's
        # visibility timeout. 0 turns it off.
        self.RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 30)
        # A worker's Redis calls retry this long before failing (a Redis restart should not
        # fail the jobs that are generating). The API keeps redis-py's short default: it
        # answers 503 instead of holding requests.
        self.WORKER_REDIS_RETRY_SECONDS = env_int("WORKER_REDIS_RETRY_SECONDS", 30)
        # Empty means REDIS_URL (resolved after the subclass overrides, see below).
        self.CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
        self.WORKER_CONCURRENCY_LIGHT = env_int("WORKER_CONCURRENCY_LIGHT", 4)
        self.WORKER_CONCURRENCY_HEAVY = env_int("WORKER_CONCURRENCY_HEAVY", 2)

        # --- token streams and SSE -------------------------------------------------------
        self.STREAM_MAXLEN = env_int("STREAM_MAXLEN", 20_000)
        # How long a finished job's event stream stays replayable in Redis.
        self.STREAM_TTL_SECONDS = env_int("STREAM_TTL_SECONDS", 3600)
        self.SSE_HEARTBEAT_SECONDS = env_float("SSE_HEARTBEAT_SECONDS", 15.0)
        # POST /api/chat/ waits this long for the answer before 504 with the job id.
        self.CHAT_WAIT_SECONDS = env_float("CHAT_WAIT_SECONDS", 120.0)

        # --- web search ------------------------------------------------------------------
        # "ddgs" (DuckDuckGo and friends), or "module:factory" returning a search backend.
        self.SEARCH_BACKEND = env_str("SEARCH_BACKEND", "ddgs")
        self.SEARCH_TIMEOUT = env_float("SEARCH_TIMEOUT", 8.0)
        self.SEARCH_MAX_RESULTS = env_int("SEARCH_MAX_RESULTS", 5)
        self.SEARCH_CACHE_TTL = env_int("SEARCH_CACHE_TTL", 600)

        # --- quotas ---------------------------------------------------------------------
        # Requests per minute per identity (a user, or one API key), by role; an admin can
        # set a per-user override.
        self.RATE_LIMIT_USER_PER_MINUTE = env_int("RATE_LIMIT_USER_PER_MINUTE", 120)
        self.RATE_LIMIT_ADMIN_PER_MINUTE = env_int("RATE_LIMIT_ADMIN_PER_MINUTE", 1200)
        # Queued + running jobs a user may have at once (0: no cap).
        self.MAX_JOBS_IN_FLIGHT = env_int("MAX_JOBS_IN_FLIGHT", 10)
        # Prompt + completion tokens a user may use per UTC day (0: no quota).
        self.DAILY_TOKEN_QUOTA = env_int("DAILY_TOKEN_QUOTA", 0)
        self.USAGE_RETENTION_DAYS = env_int("USAGE_RETENTION_DAYS", 90)

        # --- batches --------------------------------------------------------------------
        self.BATCH_MAX_REQUESTS = env_int("BATCH_MAX_REQUESTS", 10_000)
        # Largest batch body (JSON or JSONL upload); other requests keep MAX_CONTENT_LENGTH.
        self.BATCH_MAX_BYTES = env_int("BATCH_MAX_BYTES", 20 * 1024 * 1024)

        # --- what one account may hold at once (by role; 0: no cap) ----------------------
        # Without these caps one account could take a resource every account shares: the
        # API's connections, PostgreSQL's rows, the queues. Admins get more (they test and
        # operate the deployment) but still a bound, as a stolen admin key is no exception.
        # Open SSE streams: each holds a connection of an API process (GUNICORN_WORKER_
        # CONNECTIONS in all) for as long as its client likes, e.g. on a job that hangs.
        # 20 lets a user follow each of MAX_JOBS_IN_FLIGHT jobs from two places at once.
        self.MAX_OPEN_STREAMS_PER_USER = env_int("MAX_OPEN_STREAMS_PER_USER", 20)
        self.MAX_OPEN_STREAMS_PER_ADMIN = env_int("MAX_OPEN_STREAMS_PER_ADMIN", 100)
        # A stream is counted by a lease in Redis that its API process renews every third
        # of this: when the process dies (kill -9, a lost host) its streams' slots come free
        # within this many seconds. A client that leaves is noticed at the next heartbeat.
        self.STREAM_LEASE_TTL_SECONDS = env_int("STREAM_LEASE_TTL_SECONDS", 30)
        # Stored conversations, with all their messages: every chat sent without a
        # conversation_id starts one. 10,000 is years of daily use.
        self.MAX_CONVERSATIONS_PER_USER = env_int("MAX_CONVERSATIONS_PER_USER", 10_000)
        self.MAX_CONVERSATIONS_PER_ADMIN = env_int("MAX_CONVERSATIONS_PER_ADMIN", 100_000)
        # Batches queued or running: each may hold BATCH_MAX_REQUESTS jobs. They wait
        # behind interactive jobs, but a few users' batches would still fill the queues.
        self.MAX_ACTIVE_BATCHES_PER_USER = env_int("MAX_ACTIVE_BATCHES_PER_USER", 5)
        self.MAX_ACTIVE_BATCHES_PER_ADMIN = env_int("MAX_ACTIVE_BATCHES_PER_ADMIN", 20)
        # Batches kept with their results, ended or not, until their owner deletes them.
        self.MAX_STORED_BATCHES_PER_USER = env_int("MAX_STORED_BATCHES_PER_USER", 100)
        self.MAX_STORED_BATCHES_PER_ADMIN = env_int("MAX_STORED_BATCHES_PER_ADMIN", 1000)

        # --- response cache --------------------------------------------------------------
        # Seconds an answer stays in the cache (0 turns the cache and single flight off).
        self.CACHE_TTL_SECONDS = env_int("CACHE_TTL_SECONDS", 3600)
        # global: identical requests share answers across users; user: only within a user.
        self.CACHE_SCOPE = env_str("CACHE_SCOPE", "global")

        # --- metrics ----------------------------------------------------------------------
        # Bearer token a Prometheus scraper sends to /metrics; empty serves it to callers on
        # this host only (loopback, not forwarded by a proxy): see api/metrics/prometheus.py.
        self.METRICS_TOKEN = env_str("METRICS_TOKEN", "")

        # --- HTTP and logs -----------------------------------------------------------
        self.MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 1024 * 1024)
        self.LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
        # How many proxies (nginx…) sit in front and set X-Forwarded-For; 0 trusts none.
        # Client IPs in rate limits and logs come from this.
        self.PROXY_FIX_HOPS = env_int("PROXY_FIX_HOPS", 0)
        # Swagger UI's assets; the default serves the copy installed with the gateway.
        self.SWAGGER_UI_URL = env_str("SWAGGER_UI_URL", "/docs/assets/")

        self.apply_overrides()
        self.derive_extension_settings()

    def apply_overrides(self) -> None:
        """Hook for subclasses that change defaults before extension settings derive."""

    def derive_extension_settings(self) -> None:
        self.CELERY_BROKER_URL = self.CELERY_BROKER_URL or self.REDIS_URL
        # Flask extensions read these names; they derive from the gateway's own variables.
        self.SQLALCHEMY_DATABASE_URI = sqlalchemy_url(self.DATABASE_URL)
        self.SQLALCHEMY_ENGINE_OPTIONS = {
            "pool_pre_ping": True,
            "pool_size": self.DATABASE_POOL_SIZE,
            "connect_args": {"connect_timeout": self.DATABASE_CONNECT_TIMEOUT},
        }
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False
        self.SECRET_KEY = self.JWT_SECRET
        self.JWT_SECRET_KEY = self.JWT_SECRET
        self.JWT_ALGORITHM = "HS256"
        self.JWT_DECODE_ALGORITHMS = ["HS256"]
        self.JWT_ACCESS_TOKEN_EXPIRES = self.ACCESS_TOKEN_MINUTES * 60
        self.JWT_REFRESH_TOKEN_EXPIRES = self.REFRESH_TOKEN_DAYS * 24 * 3600
        self.JWT_TOKEN_LOCATION = ["headers"]
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL
        # Rate-limit counters live under REDIS_KEY_PREFIX like every other gateway key.
        self.RATELIMIT_STORAGE_OPTIONS = {"key_prefix": f"{self.REDIS_KEY_PREFIX}limits"}
        self.RATELIMIT_HEADERS_ENABLED = True
        self.RATELIMIT_STRATEGY = "fixed-window"
        # Celery (read by api.queue.celery_init_app). Every broker key is under
        # REDIS_KEY_PREFIX too, so deployments and test runs sharing a Redis never meet.
        celery_prefix = {"global_keyprefix": f"{self.REDIS_KEY_PREFIX}celery:"}
        self.CELERY = {
            "broker_url": self.CELERY_BROKER_URL,
            # No result backend: a job's outcome lives in PostgreSQL. A configured one
            # cost every submit a backend object per greenlet (~1 ms of CPU, most of it
            # reading package metadata for its client name), for results nobody reads.
            "result_backend": None,
            "broker_transport_options": {
                "visibility_timeout": self.BROKER_VISIBILITY_TIMEOUT,
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
            # Routing by task name: the API names the task, the route names the queue.
            "task_routes": {
                "gateway.jobs.run_light": {"queue": "light"},
                "gateway.jobs.run_heavy": {"queue": "heavy"},
            },
            "task_default_queue": "light",
            "task_soft_time_limit": self.JOB_SOFT_TIME_LIMIT,
            "task_time_limit": self.JOB_TIME_LIMIT,
            "task_serializer": "json",
            "accept_content": ["json"],
            "worker_hijack_root_logger": False,
            # Flower follows tasks from their workers' events. No "task-sent" event from
            # the API: it cost every submit a publish (docs/benchmarks.md), and what waits
            # in a queue is counted by Flower's broker view and /api/metrics.
            "worker_send_task_events": True,
            "task_send_sent_event": False,
            "broker_connection_retry_on_startup": True,
        }
        self.API_TITLE = "LLM Gateway"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "/docs"
        self.OPENAPI_SWAGGER_UI_URL = self.SWAGGER_UI_URL
        self.PROPAGATE_EXCEPTIONS = False

    def validate(self) -> None:
        """Refuse settings that cannot work; subclasses add their own rules."""
        if self.ACCESS_TOKEN_MINUTES <= 0 or self.REFRESH_TOKEN_DAYS <= 0:
            raise RuntimeError("ACCESS_TOKEN_MINUTES and REFRESH_TOKEN_DAYS must be positive")
        if self.SESSION_CACHE_SECONDS < 1:
            raise RuntimeError("SESSION_CACHE_SECONDS must be at least 1")
        if not 4 <= self.BCRYPT_ROUNDS <= 31:
            raise RuntimeError("BCRYPT_ROUNDS must be between 4 and 31")
        if self.MAX_CONTENT_LENGTH <= 0:
            raise RuntimeError("MAX_CONTENT_LENGTH must be positive")
        if self.COMPLEXITY_THRESHOLD < 1:
            raise RuntimeError("COMPLEXITY_THRESHOLD must be a positive number of characters")
        if not 0 <= self.LLM_CONNECT_RETRY_SECONDS < self.JOB_SOFT_TIME_LIMIT:
            raise RuntimeError(
                "LLM_CONNECT_RETRY_SECONDS must be 0 or more and below JOB_SOFT_TIME_LIMIT"
            )
        if self.LLM_PROVIDER not in ("ollama", "openai"):
            raise RuntimeError("LLM_PROVIDER must be 'ollama' or 'openai'")
        chat_names = {"auto", "light", "heavy", self.MODEL_LIGHT, self.MODEL_HEAVY}
        if clashes := sorted(chat_names & set(self.EMBEDDING_MODELS)):
            raise RuntimeError(
                f"EMBEDDING_MODELS names {', '.join(map(repr, clashes))}, already a chat model "
                "name (auto, light, heavy, MODEL_LIGHT, MODEL_HEAVY): GET /v1/models would list "
                "it twice; give the embedding model another alias"
            )
        if self.BROKER_VISIBILITY_TIMEOUT <= self.JOB_TIME_LIMIT:
            raise RuntimeError(
                "BROKER_VISIBILITY_TIMEOUT must be above JOB_TIME_LIMIT, or long jobs run twice"
            )
        for name in ACCOUNT_CAPS:
            for role in ("USER", "ADMIN"):
                if getattr(self, f"MAX_{name}_PER_{role}") < 0:
                    raise RuntimeError(f"MAX_{name}_PER_{role} must be 0 (no cap) or more")
        if self.STREAM_LEASE_TTL_SECONDS < 2:
            # Renewed every third of it: below 2 s a short pause of the process lets it lapse.
            raise RuntimeError("STREAM_LEASE_TTL_SECONDS must be at least 2")
        if self.CACHE_SCOPE not in ("global", "user"):
            raise RuntimeError("CACHE_SCOPE must be 'global' or 'user'")
        if self.CACHE_TTL_SECONDS < 0:
            raise RuntimeError("CACHE_TTL_SECONDS must be 0 (off) or more")
        if self.JOB_SOFT_TIME_LIMIT > self.JOB_TIME_LIMIT:
            raise RuntimeError("JOB_SOFT_TIME_LIMIT must not exceed JOB_TIME_LIMIT")


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


class DevelopmentConfig(Config):
    ENV_NAME = "development"

    def apply_overrides(self) -> None:
        if not self.JWT_SECRET.strip():
            # Generated once per checkout and kept, so every process and restart agrees.
            self.JWT_SECRET = dev_secrets.ensure(dev_secrets.path_from())["JWT_SECRET"]


class TestingConfig(Config):
    """Own database, Redis db and key prefix, so tests never touch development data."""

    ENV_NAME = "testing"
    TESTING = True
    __test__ = False  # not a pytest test class, despite the name

    def apply_overrides(self) -> None:
        self.DATABASE_URL = env_str(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/llm_gateway_test"
        )
        self.REDIS_URL = env_str("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
        self.REDIS_KEY_PREFIX = env_str("TEST_REDIS_KEY_PREFIX", "gwtest:")
        # Fast hashes: the rules under test do not depend on the cost factor.
        self.BCRYPT_ROUNDS = env_int("TEST_BCRYPT_ROUNDS", 4)
        if not self.JWT_SECRET.strip():
            # Into the checkout's file would be a test writing outside its own space: one
            # random secret per process instead. Processes that must accept each other's
            # tokens (the servers a test run starts) are given JWT_SECRET.
            self.JWT_SECRET = testing_secret()


class ProductionConfig(Config):
    ENV_NAME = "production"

    def validate(self) -> None:
        super().validate()
        # The messages never repeat the value: start-up errors end up in logs.
        how = (
            "set JWT_SECRET to a random value (for example `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`) before starting in production"
        )
        secret = self.JWT_SECRET or ""
        if not secret.strip():
            raise RuntimeError(f"JWT_SECRET is missing (production has no default): {how}")
        if looks_like_placeholder(secret):
            raise RuntimeError(
                "JWT_SECRET looks like a placeholder, not a generated value (a template's "
                f"wording, or one short pattern repeated): {how}"
            )
        if len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
            raise RuntimeError(
                f"JWT_SECRET is too short: use at least {MIN_PRODUCTION_SECRET_LENGTH} characters"
            )


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None) -> Config:
    """Build the config named by `name` or APP_ENV and check it."""
    name = (name or os.environ.get("APP_ENV") or "development").strip().lower()
    try:
        config_class = CONFIGS[name]
    except KeyError as exc:
        raise RuntimeError(f"APP_ENV must be one of {', '.join(CONFIGS)}, got {name!r}") from exc
    config = config_class()
    config.validate()
    return config
