"""JSON log lines on stdout, with the request id on every line and secrets scrubbed.

Shared by the API, the workers and gunicorn, so every process logs the same shape.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

# Set by the API for each request and by the worker for each job; read by every log line.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)

REDACTED = "[REDACTED]"

# Redaction runs on the finished line, so it covers messages, extra fields and tracebacks
# alike, whichever logger produced them.
_SECRET_KEY_WORDS = r"(?:password|passwd|secret|token|api[_-]?key|authorization|cookie)"  # noqa: S105
_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    # "refresh_token": "…", "password": "…" inside JSON (the value may hold escaped quotes)
    (
        re.compile(rf'("[\w-]*{_SECRET_KEY_WORDS}"\s*:\s*)"(?:[^"\\]|\\.)*"', re.IGNORECASE),
        rf'\1"{REDACTED}"',
    ),
    # password=…, api_key: … in free text and query strings
    (
        re.compile(
            rf"(\b[\w-]*{_SECRET_KEY_WORDS}\s*[=:]\s*)(?!\"|\[REDACTED)[^\s,;&}}\"']+",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\bgw_[A-Za-z0-9_-]{6,}"), f"gw_{REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
]


def redact(text: str) -> str:
    """Remove credentials (tokens, API keys, passwords) from a piece of log text."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Adds the current request id and user id to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "user_id", None) is None:
            record.user_id = user_id_var.get()
        return True


class RedactingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def json_formatter() -> RedactingJsonFormatter:
    return RedactingJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def configure_logging(level: str = "INFO") -> None:
    """Send every logger's records, as redacted JSON lines, to stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    # Replace, not add: create_app may run more than once in a process (tests, CLI).
    for existing in list(root.handlers):
        if getattr(existing, "_gateway_handler", False):
            root.removeHandler(existing)
    handler._gateway_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
