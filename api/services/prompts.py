"""What the model is sent, shared by the cache key (API) and the agent (worker)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flask import current_app


def model_messages(turns: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The gateway's system prompt, then the turns; a client's own system message wins."""
    messages = [dict(turn) for turn in turns]
    if messages and messages[0]["role"] == "system":
        return messages
    return [{"role": "system", "content": current_app.config["SYSTEM_PROMPT"]}, *messages]
