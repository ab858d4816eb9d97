"""JSON log lines on stdout, with the request id on every line and secrets scrubbed.

Shared by the API, the workers and gunicorn, so every process logs the same shape.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# Set by the API for each request and by the worker for each job; read by every log line.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)

REDACTED = "[REDACTED]"

# A field or key is secret when its name ends with one of these words ("refresh_token",
# "X-API-Key", "password"), but not "prompt_tokens" or "token_type".
_SECRET_ENDINGS = r"(?:password|passwd|secret|token|api[_-]?key|authorization|cookie)"  # noqa: S105
_SECRET_NAME = re.compile(_SECRET_ENDINGS + "$", re.IGNORECASE)
_SECRET_WORDS = r"[\w-]*" + _SECRET_ENDINGS
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
_BARE = r"[^\s,;&}'\"]+"
_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    # Credentials recognisable by their shape, wherever they stand.
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\bgw_[A-Za-z0-9_-]{6,}"), f"gw_{REDACTED}"),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1 {REDACTED}"),
    # Values of secret-named keys: JSON or dict reprs ("password": "…", 'api_key': '…')
    (
        re.compile(rf"""(["']{_SECRET_WORDS}["']\s*:\s*)(?:{_QUOTED})""", re.IGNORECASE),
        rf'\1"{REDACTED}"',
    ),
    # … and free text or query strings (password=…, api_key: "…", token=…&)
    (
        re.compile(
            rf"(\b{_SECRET_WORDS}\s*[=:]\s*)(?!\[REDACTED|Bearer |Basic )(?:{_QUOTED}|{_BARE})",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
]


def redact(text: str) -> str:
    """Remove credentials (tokens, API keys, passwords) from a piece of log text."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(name: str, value: Any) -> Any:
    if isinstance(value, str):
        return REDACTED if _SECRET_NAME.search(name) else redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(name, item) for item in value]
    return value


class ContextFilter(logging.Filter):
    """Adds the current request id and user id to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "user_id", None) is None:
            record.user_id = user_id_var.get()
        return True


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines with secrets removed from every field: message, extras, tracebacks.

    Redaction runs on the fields before they are serialized, so quoting and escaping
    inside the JSON line cannot hide a secret from the patterns.
    """

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: _redact_value(key, value) for key, value in log_data.items()}


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
