"""LangChain chat models chosen by config: Ollama (default) or any OpenAI-compatible server."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from typing import Any, Self

import certifi
import httpx
import ollama
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langchain_ollama import ChatOllama
from langchain_ollama._utils import merge_auth_headers, parse_url_with_auth
from pydantic import model_validator

from config.settings import ModelSettings
from worker.stopping import make_stoppable


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
        make_stoppable(httpx.Client(timeout=timeout, verify=ssl_context())),
        httpx.AsyncClient(timeout=timeout, verify=ssl_context()),
    )


def _keep_whole_tool_schemas() -> None:
    """Make the ollama client send a tool's JSON schema whole.

    Its Tool model keeps only type/items/description/enum of each property and drops the
    rest when it re-serializes a tool: a nested object's `properties` and `required`,
    `anyOf`, `additionalProperties`, bounds. A client's tools must reach the model as the
    client wrote them, so the two schema models keep what they do not know.
    """
    from ollama._types import ChatRequest, Tool

    for model in (Tool.Function.Parameters.Property, Tool.Function.Parameters):
        model.model_config["extra"] = "allow"
        model.model_rebuild(force=True)
    for model in (Tool.Function, Tool, ChatRequest):
        model.model_rebuild(force=True)


_keep_whole_tool_schemas()


@functools.cache
def ollama_clients(
    host: str, read_timeout: float, connect_timeout: float
) -> tuple[ollama.Client, ollama.AsyncClient]:
    """The ollama clients of one server, shared by all jobs of the process.

    ChatOllama would build two for every job (two httpx clients, their pools): each job
    then opened a new connection to the model server and left the old pool to the
    garbage collector. Shared, the jobs reuse kept-alive connections.
    """
    # Credentials in the URL (http://user:pass@host) become a header, as ChatOllama does it.
    cleaned, auth_headers = parse_url_with_auth(host)
    kwargs: dict[str, Any] = {
        "timeout": httpx.Timeout(read_timeout, connect=connect_timeout),
        "verify": ssl_context(),
    }
    merge_auth_headers(kwargs, auth_headers)
    client = ollama.Client(cleaned, **kwargs)
    # A cancelled job's model request is cut where it waits (worker/stopping.py).
    make_stoppable(client._client)  # the ollama client's httpx client
    return client, ollama.AsyncClient(cleaned, **kwargs)


class _ChatOllama(ChatOllama):
    """ChatOllama on the process's shared clients, with Ollama options it has no field for
    (the OpenAI penalties)."""

    extra_options: dict[str, Any] = {}
    read_timeout: float
    connect_timeout: float

    @model_validator(mode="after")
    def _set_clients(self) -> Self:  # replaces ChatOllama's, which builds new clients
        self._client, self._async_client = ollama_clients(
            self.base_url, self.read_timeout, self.connect_timeout
        )
        return self

    def _chat_params(self, messages, stop=None, **kwargs):
        params = super()._chat_params(messages, stop, **kwargs)
        if self.extra_options:
            params["options"] = {**(params.get("options") or {}), **self.extra_options}
        return params


def _ollama_format(response_format: Mapping[str, Any] | None) -> str | dict[str, Any] | None:
    """OpenAI's response_format as Ollama's `format`: "json", or the JSON schema itself."""
    if not response_format:
        return None
    if response_format["type"] == "json_object":
        return "json"
    return response_format["json_schema"].get("schema") or "json"


def chat_model(models: ModelSettings, model: str, params: Mapping[str, Any]) -> BaseChatModel:
    """The chat model for a job's `params` (generation_params: max_tokens, temperature and
    the OpenAI options), speaking the configured server's own protocol."""
    max_tokens = params["max_tokens"]
    if models.llm_provider == "openai":
        from langchain_openai import ChatOpenAI

        timeout = httpx.Timeout(models.llm_read_timeout, connect=models.llm_connect_timeout)
        sync_client, async_client = openai_http_clients(
            models.llm_read_timeout, models.llm_connect_timeout
        )
        # Passed through as OpenAI names it: the server is OpenAI-compatible.
        passed = (
            {"response_format": params["response_format"]} if params.get("response_format") else {}
        )
        return ChatOpenAI(
            model=model,
            base_url=models.openai_base_url or None,
            api_key=models.openai_api_key,
            max_tokens=max_tokens,
            temperature=params.get("temperature"),
            top_p=params.get("top_p"),
            seed=params.get("seed"),
            stop=params.get("stop"),
            presence_penalty=params.get("presence_penalty"),
            frequency_penalty=params.get("frequency_penalty"),
            logprobs=params.get("logprobs"),
            top_logprobs=params.get("top_logprobs"),
            logit_bias=params.get("logit_bias"),
            model_kwargs=passed,
            timeout=timeout,
            http_client=sync_client,
            http_async_client=async_client,
            max_retries=0,  # retries are ours, and only before the first token
            stream_usage=True,
            # langchain-openai sends only max_completion_tokens; llama.cpp's server reads
            # max_tokens alone and would otherwise generate without a limit.
            extra_body={"max_tokens": max_tokens},
        )
    penalties = {
        name: params[name]
        for name in ("presence_penalty", "frequency_penalty")
        if params.get(name) is not None
    }
    return _ChatOllama(
        model=model,
        base_url=models.ollama_url,
        num_predict=max_tokens,
        temperature=params.get("temperature"),
        top_p=params.get("top_p"),
        seed=params.get("seed"),
        stop=params.get("stop"),
        logprobs=params.get("logprobs"),
        top_logprobs=(params.get("top_logprobs") or None) if params.get("logprobs") else None,
        format=_ollama_format(params.get("response_format")),
        extra_options=penalties,
        read_timeout=models.llm_read_timeout,
        connect_timeout=models.llm_connect_timeout,
    )


def with_client_tools(
    models: ModelSettings, model: BaseChatModel, params: Mapping[str, Any]
) -> Runnable | None:
    """`model` offered the client's tools (OpenAI function tools) as its tool_choice says;
    None when the request brought none (or tool_choice is none: no tool may be called).

    OpenAI-compatible servers get tool_choice and parallel_tool_calls as they are. Ollama
    has neither: a named function is offered alone, and `required` cannot be forced (the
    model may still answer in text; the compatibility docs say so).
    """
    tools, choice = params.get("client_tools"), params.get("tool_choice")
    if not tools or choice == "none":
        return None
    if models.llm_provider == "openai":
        extra = {}
        if params.get("parallel_tool_calls") is not None:
            extra["parallel_tool_calls"] = params["parallel_tool_calls"]
        return model.bind_tools(tools, tool_choice=choice, **extra)
    if isinstance(choice, dict):
        tools = [tool for tool in tools if tool["function"]["name"] == choice["function"]["name"]]
    return model.bind_tools(tools)
