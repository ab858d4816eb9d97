"""Secrets of one development checkout: generated once at random, kept in a git-ignored file.

A secret written in the code is known to everyone who has read the code: with the JWT
secret, anyone could sign a token for an admin's user id that every development stack
accepts. So no secret has a default value. A development run without JWT_SECRET (`make
dev`, `make run`, a `flask` command, a bare gunicorn or Celery worker) takes it from
`.dev-secrets` at the checkout's root, and the first one to need it generates it there
with Python's `secrets`; every later process and start reads the same value, so tokens
outlive restarts and the processes of a stack agree. `make dev` keeps Flower's login in
the same file.

Production never reads this file (ProductionConfig requires JWT_SECRET).
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILE_NAME = ".dev-secrets"
# Set to keep the file elsewhere (a relative path is taken from the checkout's root).
PATH_VARIABLE = "DEV_SECRETS_FILE"
FILE_MODE = 0o600

# What the file holds, and how each value is made when it is missing.
GENERATORS: dict[str, Callable[[], str]] = {
    "JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "FLOWER_BASIC_AUTH": lambda: f"flower:{secrets.token_urlsafe(18)}",
}

HEADER = """\
# Development secrets of this checkout, generated on first use (config/dev_secrets.py).
# Keep it private: never commit or copy it. Delete it to have new ones made (everyone's
# development tokens then stop working). A variable set in the environment or .env wins.
"""


def path_from(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the file is: DEV_SECRETS_FILE, or `.dev-secrets` at the checkout's root."""
    configured = (environ.get(PATH_VARIABLE) or "").strip()
    if not configured:
        return ROOT / FILE_NAME
    path = Path(configured).expanduser()
    # From the root rather than the working directory, so every command finds one file.
    return path if path.is_absolute() else ROOT / path


def parse(text: str) -> dict[str, str]:
    """NAME=value lines; comments and blank lines are skipped."""
    values = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def ensure(path: Path | None = None) -> dict[str, str]:
    """The checkout's development secrets, generating the ones the file lacks (once).

    Safe to call from many processes at once: the processes of a stack start together
    (gunicorn's workers, the Celery workers), and under the lock exactly one of them
    generates a missing value while the others wait and then read it.
    """
    path = path or path_from()
    try:
        # Created private: a secret must not be readable by other users even for an instant.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise RuntimeError(
            f"JWT_SECRET is not set, and development cannot keep a generated one in {path} "
            f"({exc.strerror}): set JWT_SECRET, or {PATH_VARIABLE} to a writable file"
        ) from exc
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        # A copy made with looser permissions (cp, an editor) is made private again.
        os.fchmod(fd, FILE_MODE)
        text = handle.read()
        values = parse(text)
        missing = {name: make() for name, make in GENERATORS.items() if not values.get(name)}
        if missing:
            # Appended, so lines the developer added or edited stay as they are.
            lines = [] if text.strip() else [HEADER]
            if text and not text.endswith("\n"):
                lines.append("\n")
            lines += [f"{name}={value}\n" for name, value in missing.items()]
            handle.write("".join(lines))
            handle.flush()
            os.fsync(fd)
            values.update(missing)
    return values
