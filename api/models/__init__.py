"""SQLAlchemy models; importing this package registers every table on db.metadata."""

from api.models.api_key import ApiKey
from api.models.conversation import Conversation
from api.models.message import MESSAGE_ROLES, Message
from api.models.user import ROLES, User

__all__ = ["MESSAGE_ROLES", "ROLES", "ApiKey", "Conversation", "Message", "User"]
