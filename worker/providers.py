"""LangChain chat models chosen by config: Ollama (default) or any OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel


def chat_model(
    config: Mapping[str, Any], model: str, *, max_tokens: int, temperature: float | None
) -> BaseChatModel:
    timeout = httpx.Timeout(config["LLM_READ_TIMEOUT"], connect=config["LLM_CONNECT_TIMEOUT"])
    if config["LLM_PROVIDER"] == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=model,
            base_url=config["OPENAI_BASE_URL"] or None,
            api_key=config["OPENAI_API_KEY"],
            max_tokens=max_tokens,
            temperature=temperature,
            timeout=timeout,
            max_retries=0,  # retries are ours, and only before the first token
            stream_usage=True,
        )
    from langchain_ollama import ChatOllama

    return ChatOllama(
        model=model,
        base_url=config["OLLAMA_URL"],
        num_predict=max_tokens,
        temperature=temperature,
        client_kwargs={"timeout": timeout},
    )
