"""A job's statuses and tiers: the one spelling of each, for the database, the API and the worker.

StrEnum members are the strings themselves (`JobStatus.QUEUED == "queued"`), so rows read
back from PostgreSQL compare equal to them and JSON carries them as plain text.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is in its life (pipeline/lifecycle.py moves it; docs/architecture/job-states.md
    draws the moves)."""

    QUEUED = "queued"  # written at submit; waiting for a worker (or for its cache leader)
    RUNNING = "running"  # claimed by a worker delivery
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


JOB_STATUSES = tuple(JobStatus)
# A job in one of these never changes again.
TERMINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# A job in one of these still holds a slot of its user's in-flight cap.
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class Tier(StrEnum):
    """The model tier the classifier picked; each has its own queue and workers."""

    LIGHT = "light"
    HEAVY = "heavy"


TIERS = tuple(Tier)


def sql_in(column: str, values: type[StrEnum] | tuple[StrEnum, ...]) -> str:
    """A CHECK constraint's `column IN ('a', 'b')` for the members given."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"
