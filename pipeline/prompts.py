"""What the model is sent, shared by the cache key (API) and the agent (worker)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from config.settings import get_settings


def model_messages(turns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The gateway's system prompt, then the turns; a client's own system message wins."""
    messages = [dict(turn) for turn in turns]
    if any(message["role"] == "system" for message in messages):
        return messages
    return [{"role": "system", "content": get_settings().models.system_prompt}, *messages]
