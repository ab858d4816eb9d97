from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db
from core.models.base import created_at_column, elapsed_ms, uuid_pk
from core.statuses import TERMINAL_STATUSES, JobStatus, Tier, sql_in


class Job(db.Model):
    """One chat generation. PostgreSQL is its source of truth; Redis only carries it."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(sql_in("status", JobStatus), name="ck_jobs_status"),
        CheckConstraint(sql_in("tier", Tier), name="ck_jobs_tier"),
        UniqueConstraint("user_id", "idempotency_key", name="uq_jobs_user_idempotency_key"),
        Index("ix_jobs_user_created", "user_id", "created_at"),
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_leader_job_id", "leader_job_id"),
        Index("ix_jobs_batch_id_status", "batch_id", "status"),
        UniqueConstraint("batch_id", "custom_id", name="uq_jobs_batch_custom_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=JobStatus.QUEUED)
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    route_score: Mapped[float] = mapped_column(Float, nullable=False)
    route_reason: Mapped[str] = mapped_column(String(500), nullable=False)
    # {"messages": [...exactly what the model is sent...], "params": {...}}
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    output: Mapped[str | None] = mapped_column(Text)
    # The client's tools the model called (OpenAI's tool_calls), when it called any: the
    # job ends there and the client runs them (the OpenAI-compatible API).
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    # Per-token log probabilities (OpenAI's logprobs.content), when the client asked.
    logprobs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    user_message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    assistant_message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # The response-cache key of this job's request; None when the cache was bypassed.
    cache_key: Mapped[str | None] = mapped_column(String(64))
    # The answer came from the cache or from an identical job generating at the same time.
    cached: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    # A batch's request: its batch and the client's id for it.
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    custom_id: Mapped[str | None] = mapped_column(String(64))
    # Single flight: this job waits for the identical job that is generating its answer.
    leader_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_token_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Never loaded (the ids are what the code uses): they tell the flush to insert a new
    # conversation and messages before a job that names them in the same commit.
    conversation = relationship("Conversation", lazy="raise_on_sql")
    user_message = relationship("Message", foreign_keys=[user_message_id], lazy="raise_on_sql")
    assistant_message = relationship(
        "Message", foreign_keys=[assistant_message_id], lazy="raise_on_sql"
    )

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    # The timings every report of a job uses (API, usage log, metrics); None while unknown.
    @property
    def queue_wait_ms(self) -> float | None:
        return elapsed_ms(self.created_at, self.started_at)

    @property
    def ttft_ms(self) -> float | None:
        return elapsed_ms(self.started_at, self.first_token_at)

    @property
    def duration_ms(self) -> float | None:
        return elapsed_ms(self.started_at, self.finished_at)
