"""LangChain chat models chosen by config: Ollama (default) or any OpenAI-compatible server."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from typing import Any

import certifi
import httpx
from langchain_core.language_models import BaseChatModel


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One TLS context per process: httpx would load the CA bundle again for every client
    (~30 ms of CPU each, two clients per job), which dominated a job's start-up."""
    return ssl.create_default_context(cafile=certifi.where())


@functools.cache
def openai_http_clients(
    read_timeout: float, connect_timeout: float
) -> tuple[httpx.Client, httpx.AsyncClient]:
    # Shared by all jobs of the process: one connection pool, one TLS context. The async
    # client is never used; passing it stops ChatOpenAI building one (and its TLS) per job.
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    return (
        httpx.Client(timeout=timeout, verify=ssl_context()),
        httpx.AsyncClient(timeout=timeout, verify=ssl_context()),
    )


def chat_model(
    config: Mapping[str, Any], model: str, *, max_tokens: int, temperature: float | None
) -> BaseChatModel:
    timeout = httpx.Timeout(config["LLM_READ_TIMEOUT"], connect=config["LLM_CONNECT_TIMEOUT"])
    if config["LLM_PROVIDER"] == "openai":
        from langchain_openai import ChatOpenAI

        sync_client, async_client = openai_http_clients(
            config["LLM_READ_TIMEOUT"], config["LLM_CONNECT_TIMEOUT"]
        )
        return ChatOpenAI(
            model=model,
            base_url=config["OPENAI_BASE_URL"] or None,
            api_key=config["OPENAI_API_KEY"],
            max_tokens=max_tokens,
            temperature=temperature,
            timeout=timeout,
            http_client=sync_client,
            http_async_client=async_client,
            max_retries=0,  # retries are ours, and only before the first token
            stream_usage=True,
            # langchain-openai sends only max_completion_tokens; llama.cpp's server reads
            # max_tokens alone and would otherwise generate without a limit.
            extra_body={"max_tokens": max_tokens},
        )
    from langchain_ollama import ChatOllama

    return ChatOllama(
        model=model,
        base_url=config["OLLAMA_URL"],
        num_predict=max_tokens,
        temperature=temperature,
        client_kwargs={"timeout": timeout, "verify": ssl_context()},
    )
