"""Helpers for the OpenAI-compatible API's live tests: the official SDK pointed at the
gateway, raw HTTP where the SDK hides the wire format, and what the model server got."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import openai
import requests
from sqlalchemy import select

from core.db import db
from core.models import UsageRecord

if TYPE_CHECKING:
    from tests.integration.conftest import Client

OPENAI_ERROR_FIELDS = {"message", "type", "param", "code"}


def unique(label: str) -> str:
    return f"{label} marker {uuid.uuid4().hex}"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def create_api_key(client: Client, name: str = "openai sdk") -> dict:
    """A new API key of the client's user: {"id", "key", ...}."""
    response = client.post("/api/user/api-keys", json={"name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["key"].startswith("gw_"), body
    return body


def sdk(live, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=api_key, max_retries=0, timeout=30)


def raw_post(live, api_key: str, body, **kwargs) -> requests.Response:
    """POST /v1/chat/completions over plain HTTP (a dict is sent as JSON, bytes as they are)."""
    headers = {"Authorization": f"Bearer {api_key}", **kwargs.pop("headers", {})}
    if isinstance(body, bytes):
        headers.setdefault("Content-Type", "application/json")
        kwargs["data"] = body
    else:
        kwargs["json"] = body
    return requests.post(live.url + "/v1/chat/completions", headers=headers, timeout=30, **kwargs)


def openai_error(response: requests.Response, status: int) -> dict:
    """The error object of a raw response, after checking it has exactly OpenAI's shape."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == OPENAI_ERROR_FIELDS, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def read_frames(response: requests.Response) -> tuple[list, list[str]]:
    """A raw /v1 stream: its `data:` payloads (JSON, or the string "[DONE]") and comments."""
    frames: list = []
    comments: list[str] = []
    data_lines: list[str] = []
    for raw in response.iter_lines(decode_unicode=True):
        line = raw or ""
        if line.startswith(":"):
            comments.append(line)
        elif line.startswith("data:"):
            data_lines.append(line.removeprefix("data:").removeprefix(" "))
        elif line == "" and data_lines:
            data = "\n".join(data_lines)
            data_lines = []
            frames.append(data if data == "[DONE]" else json.loads(data))
            if data == "[DONE]":
                break
    response.close()
    return frames, comments


def job_id_of(completion_id: str) -> str:
    assert completion_id.startswith("chatcmpl-"), completion_id
    return str(uuid.UUID(completion_id.removeprefix("chatcmpl-")))


def requests_mentioning(fake, text: str) -> list[dict]:
    """The chat requests the model server received whose body contains `text`."""
    return [body for body in list(fake.requests) if text in json.dumps(body, ensure_ascii=False)]


def the_model_request(fake, text: str) -> dict:
    found = requests_mentioning(fake, text)
    assert len(found) == 1, found
    return found[0]


def usage_row(app, job_id: str) -> UsageRecord:
    with app.app_context():
        query = select(UsageRecord).where(UsageRecord.job_id == uuid.UUID(job_id))
        row = db.session.scalars(query).one()
        db.session.expunge_all()
    return row


def job_usage(job: dict) -> dict:
    usage = job["usage"]
    return {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
    }


def usage_dict(usage) -> dict:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
