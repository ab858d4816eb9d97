"""Structured output: an answer checked against the client's response_format schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema

from worker.agent.errors import ModelError


def check_structured_output(response_format: Mapping[str, Any] | None, text: str) -> None:
    """Raise ModelError when a strict json_schema answer is not JSON matching the schema.

    Only `strict: true` is checked, as OpenAI guarantees only then; the model server was
    asked for the schema either way (Ollama's `format`, or response_format passed on).
    """
    if not response_format or response_format.get("type") != "json_schema":
        return
    spec = response_format["json_schema"]
    if not spec.get("strict"):
        return
    try:
        answer = json.loads(text)
    except ValueError:
        raise ModelError(
            "invalid_structured_output", "The model's answer is not JSON, as the schema requires."
        ) from None
    problem = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(spec.get("schema") or {})(
            spec.get("schema") or {}
        ).iter_errors(answer)
    )
    if problem is not None:
        where = "/".join(str(part) for part in problem.absolute_path) or "(root)"
        raise ModelError(
            "invalid_structured_output",
            f"The model's answer does not match the {spec['name']} schema at {where}: "
            f"{problem.message}"[:500],
        )
