"""Configuration classes, read from environment variables with typed defaults.

Every variable is documented in `.env.example`. `load_config()` picks the class named by
APP_ENV (development, testing, production).
"""

from __future__ import annotations

import os

# The development default; production refuses it (see ProductionConfig.validate).
DEFAULT_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"  # noqa: S105
MIN_PRODUCTION_SECRET_LENGTH = 32


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from exc


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise RuntimeError(f"{name} must be a boolean (true/false), got {raw!r}")


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
        self.DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 5)
        self.DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 3)
        self.REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
        # Every key the gateway writes starts with this, so deployments can share a Redis.
        self.REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "gw:")
        self.REDIS_SOCKET_TIMEOUT = env_int("REDIS_SOCKET_TIMEOUT", 3)

        # --- auth ------------------------------------------------------------------
        self.JWT_SECRET = env_str("JWT_SECRET", DEFAULT_JWT_SECRET)
        self.ACCESS_TOKEN_MINUTES = env_int("ACCESS_TOKEN_MINUTES", 15)
        self.REFRESH_TOKEN_DAYS = env_int("REFRESH_TOKEN_DAYS", 30)
        self.BCRYPT_ROUNDS = env_int("BCRYPT_ROUNDS", 12)
        self.PASSWORD_MIN_LENGTH = env_int("PASSWORD_MIN_LENGTH", 8)
        self.MAX_API_KEYS_PER_USER = env_int("MAX_API_KEYS_PER_USER", 20)

        # --- rate limits (flask-limiter syntax, counted in Redis) ----------------------
        self.LOGIN_RATE_LIMIT_PER_IP = env_str("LOGIN_RATE_LIMIT_PER_IP", "20/minute")
        # Counts failed attempts only, so users are never locked out by their own
        # successful logins.
        self.LOGIN_RATE_LIMIT_PER_EMAIL = env_str("LOGIN_RATE_LIMIT_PER_EMAIL", "5/minute")
        self.REGISTER_RATE_LIMIT_PER_IP = env_str("REGISTER_RATE_LIMIT_PER_IP", "10/minute")

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
        if not 4 <= self.BCRYPT_ROUNDS <= 31:
            raise RuntimeError("BCRYPT_ROUNDS must be between 4 and 31")
        if self.MAX_CONTENT_LENGTH <= 0:
            raise RuntimeError("MAX_CONTENT_LENGTH must be positive")


class DevelopmentConfig(Config):
    ENV_NAME = "development"


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


class ProductionConfig(Config):
    ENV_NAME = "production"

    def validate(self) -> None:
        super().validate()
        secret = self.JWT_SECRET or ""
        if not secret.strip() or secret == DEFAULT_JWT_SECRET or "change-me" in secret.lower():
            raise RuntimeError(
                "JWT_SECRET is missing or still the default: set JWT_SECRET to a random value "
                "(for example `python -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
                "before starting in production"
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
