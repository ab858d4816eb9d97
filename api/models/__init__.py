"""SQLAlchemy models; importing this package registers every table on db.metadata."""

from api.models.api_key import ApiKey
from api.models.conversation import Conversation
from api.models.job import JOB_STATUSES, TERMINAL_STATUSES, TIERS, Job
from api.models.message import MESSAGE_ROLES, Message
from api.models.usage import UsageRecord
from api.models.user import ROLES, User

__all__ = [
    "JOB_STATUSES",
    "MESSAGE_ROLES",
    "ROLES",
    "TERMINAL_STATUSES",
    "TIERS",
    "ApiKey",
    "Conversation",
    "Job",
    "Message",
    "UsageRecord",
    "User",
]
