"""SQLAlchemy models; importing this package registers every table on db.metadata."""

from core.models.api_key import ApiKey
from core.models.batch import BATCH_STATUSES, Batch
from core.models.conversation import Conversation
from core.models.job import Job
from core.models.login_session import REVOKE_REASONS, LoginSession
from core.models.message import MESSAGE_ROLES, Message
from core.models.usage import UsageRecord
from core.models.user import ROLES, User
from core.statuses import JOB_STATUSES, TERMINAL_STATUSES, TIERS

__all__ = [
    "BATCH_STATUSES",
    "JOB_STATUSES",
    "MESSAGE_ROLES",
    "REVOKE_REASONS",
    "ROLES",
    "TERMINAL_STATUSES",
    "TIERS",
    "ApiKey",
    "Batch",
    "Conversation",
    "Job",
    "LoginSession",
    "Message",
    "UsageRecord",
    "User",
]
