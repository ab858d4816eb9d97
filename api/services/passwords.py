"""Password rules and bcrypt hashing."""

from __future__ import annotations

import functools

import bcrypt

from config.settings import get_settings

# bcrypt only reads the first 72 bytes; longer passwords are refused, never truncated.
BCRYPT_MAX_BYTES = 72


def password_problems(password: str) -> list[str]:
    """What is wrong with a new password, as messages for the client (empty when fine)."""
    problems = []
    min_length = get_settings().auth.password_min_length
    if len(password) < min_length:
        problems.append(f"Password must be at least {min_length} characters long.")
    if len(password.encode("utf-8")) > BCRYPT_MAX_BYTES:
        problems.append(
            f"Password must be at most {BCRYPT_MAX_BYTES} bytes in UTF-8 "
            "(the bcrypt limit); use a shorter passphrase."
        )
    if password.strip() == "":
        problems.append("Password must not be blank.")
    return problems


def hash_password(password: str) -> str:
    rounds = get_settings().auth.bcrypt_rounds
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    encoded = password.encode("utf-8")
    if len(encoded) > BCRYPT_MAX_BYTES:
        return False
    return bcrypt.checkpw(encoded, password_hash.encode("ascii"))


@functools.cache
def _dummy_hash(rounds: int) -> str:
    return bcrypt.hashpw(b"not-a-real-password", bcrypt.gensalt(rounds)).decode("ascii")


def burn_verify_time() -> None:
    """Spend what a real check costs, so unknown emails cannot be told apart by timing."""
    verify_password("not-the-password", _dummy_hash(get_settings().auth.bcrypt_rounds))
