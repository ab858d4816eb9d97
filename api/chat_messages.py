"""The chat messages a job carries, in OpenAI's shape (as api/schemas/openai_compat.py
loads them): what the API, the cache key and the worker all read them with.

A message is {"role": system|user|assistant|tool, "content": str | parts, "tool_calls"?:
[{"id", "type": "function", "function": {"name", "arguments"}}], "tool_call_id"?}; parts
(user messages with images only) are {"type": "text", "text"} and {"type": "image_url",
"image_url": {"url"}}.
"""

from __future__ import annotations

from typing import Any


def text_of(content: Any) -> str:
    """The text of a message's content (a string, None or parts)."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return content or ""
