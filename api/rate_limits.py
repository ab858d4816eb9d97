"""Rate-limit keys and limits for flask-limiter (counters live in Redis)."""

from __future__ import annotations

import hashlib
import time

import redis
from flask import Flask, g, make_response, request
from flask_limiter.util import get_remote_address
from limits.storage import RedisStorage

from api import errors
from api.extensions import limiter
from config.settings import get_settings

# Selects the storage below when put before a Redis URL's scheme.
STORAGE_SCHEME_PREFIX = "gateway+"


class SteadyResetRedisStorage(RedisStorage):
    """limits' Redis storage with a window end to the millisecond.

    The stock one adds Redis's TTL in whole seconds to the current time, so
    X-RateLimit-Reset moved by a second between requests of one window; PTTL gives every
    request of a window the same reset. Registered by its scheme (limits' own mechanism).
    """

    STORAGE_SCHEME = [f"{STORAGE_SCHEME_PREFIX}{scheme}" for scheme in RedisStorage.STORAGE_SCHEME]

    def __init__(self, uri: str, **options) -> None:
        super().__init__(uri.removeprefix(STORAGE_SCHEME_PREFIX), **options)

    def get_expiry(self, key: str) -> float:
        milliseconds = self.get_connection(True).pttl(self.prefixed_key(key))
        return max(milliseconds, 0) / 1000 + time.time()


def _email_in_body() -> str:
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    normalized = email.strip().lower() if isinstance(email, str) else ""
    # Hashed, so an email never appears in a Redis key. surrogatepass: a lone surrogate
    # is refused by validation later; the key must not fail before it.
    digest = hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return "email:" + digest


def _failed_credentials(response) -> bool:
    return response.status_code in (401, 422)


def _current_user_key() -> str:
    return f"user:{g.identity.user_id}"


def _identity_key() -> str:
    """Each API key has its own budget; a user's JWT sessions share theirs."""
    identity = g.identity
    if identity.api_key_id is not None:
        return f"key:{identity.api_key_id}"
    return f"user:{identity.user_id}"


def _identity_limit() -> str:
    user, limits = g.identity.user, get_settings().limits
    per_minute = user.rate_limit_per_minute or (
        limits.rate_limit_admin_per_minute if user.is_admin else limits.rate_limit_user_per_minute
    )
    return f"{per_minute}/minute"


# Every authenticated endpoint draws on one budget per identity (applied by auth_required,
# after authentication, so the limit follows the caller's role and override).
per_identity = limiter.shared_limit(_identity_limit, scope="identity", key_func=_identity_key)


login_per_ip = limiter.limit(
    lambda: get_settings().auth.login_rate_limit_per_ip,
    key_func=get_remote_address,
    scope="login-ip",
)
# Only failures count, so the owner's successful logins never lock them out. Failures are
# counted per account and client address: an attacker failing from one address locks only
# that address out of the account, not its owner elsewhere; a larger budget per account
# over all addresses together slows a guesser spread over many.
login_per_email_and_ip = limiter.limit(
    lambda: get_settings().auth.login_rate_limit_per_email,
    key_func=lambda: f"{_email_in_body()}:ip:{get_remote_address()}",
    scope="login-email-ip",
    deduct_when=_failed_credentials,
)
login_per_email = limiter.limit(
    lambda: get_settings().auth.login_rate_limit_per_email_all_ips,
    key_func=_email_in_body,
    scope="login-email",
    deduct_when=_failed_credentials,
)
register_per_ip = limiter.limit(
    lambda: get_settings().auth.register_rate_limit_per_ip,
    key_func=get_remote_address,
    scope="register-ip",
)
# Guessing the current password with a stolen token is throttled like a login.
password_change_per_user = limiter.limit(
    lambda: get_settings().auth.login_rate_limit_per_email,
    key_func=_current_user_key,
    scope="password-change",
    deduct_when=_failed_credentials,
)


def use_steady_storage(app: Flask) -> None:
    """Before limiter.init_app: count in SteadyResetRedisStorage."""
    uri = app.config["RATELIMIT_STORAGE_URI"]
    if uri.split("://", 1)[0] in RedisStorage.STORAGE_SCHEME:
        app.config["RATELIMIT_STORAGE_URI"] = STORAGE_SCHEME_PREFIX + uri


def init_app(app: Flask) -> None:
    """After limiter.init_app: its response hook reads the window from Redis for the
    X-RateLimit-* headers, and a Redis lost since the request's check (a long wait for an
    answer, say) failed that hook, and so the response, with a 500."""

    @app.after_request  # registered later, so it runs before the limiter's hook
    def read_window_or_503(response):
        limit = limiter.current_limit
        # A limit that counts only some outcomes (failed logins) is read by the limiter
        # after it has deducted this one: reading it here first would show it undeducted.
        if limit is None or limiter.context.conditional_deductions:
            return response
        try:
            limit.window  # noqa: B018 - read once here; the limiter's hook reuses it
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            return make_response(errors.redis_unavailable(exc))
        return response
