"""SQLAlchemy models; importing this package registers every table on db.metadata."""

from api.models.api_key import ApiKey
from api.models.batch import BATCH_STATUSES, Batch
from api.models.conversation import Conversation
from api.models.job import JOB_STATUSES, TERMINAL_STATUSES, TIERS, Job
from api.models.login_session import REVOKE_REASONS, LoginSession
from api.models.message import MESSAGE_ROLES, Message
from api.models.usage import UsageRecord
from api.models.user import ROLES, User

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
