"""Usage statistics for admins, from the usage log (one row per ended chat request)."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.errors import InvalidInput
from core.models.base import utcnow
from core.repositories import usage as usage_repo

DEFAULT_SPAN = timedelta(days=1)
MAX_SPAN = timedelta(days=366)


def _with_total(row: dict) -> dict:
    return {**row, "total_tokens": row["prompt_tokens"] + row["completion_tokens"]}


def _by_tokens(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: (-row["total_tokens"], -row["requests"]))


def report(since: datetime | None, until: datetime | None, top: int) -> dict:
    """Per user and per model/tier figures in [since, until), and the top users by tokens."""
    until = until or utcnow()
    if since is None:
        try:
            since = until - DEFAULT_SPAN
        except OverflowError:  # 'to' within a day of year 1
            raise InvalidInput(
                "'to' is too early.", details={"query": {"to": ["Too early for a range."]}}
            ) from None
    if since >= until:
        raise InvalidInput(
            "'from' must be before 'to'.", details={"query": {"from": ["Must be before 'to'."]}}
        )
    if until - since > MAX_SPAN:
        raise InvalidInput(
            f"The range may span at most {MAX_SPAN.days} days.",
            details={"query": {"from": [f"At most {MAX_SPAN.days} days before 'to'."]}},
        )
    totals = _with_total(usage_repo.totals(since, until))
    by_user = _by_tokens([_with_total(row) for row in usage_repo.per_user(since, until)])
    by_model = _by_tokens([_with_total(row) for row in usage_repo.per_model(since, until)])
    top_users = [
        {"user_id": row["user_id"], "email": row["email"], "total_tokens": row["total_tokens"]}
        for row in by_user[:top]
    ]
    return {
        "from_": since,
        "to": until,
        "totals": totals,
        "by_user": by_user,
        "by_model": by_model,
        "top_users": top_users,
    }
