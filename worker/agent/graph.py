"""The LangGraph agent: an LLM node and a tools node, with bounded tool rounds.

    START → llm ─(tool calls, rounds left)→ tools → llm … ─(text)→ END

The tools node runs the gateway's own (server-side) tools. A request that brings its own
tools (the OpenAI-compatible API) gets a model bound to those instead, and the graph ends
at the model's tool calls: they are the answer, and the client runs them.

Every token the model streams goes to `hooks.token` as it arrives; tool calls and their
results go to `hooks.tool_call` / `hooks.tool_result`.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    ToolMessage,
    message_chunk_to_message,
)
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from worker.agent.errors import JobStopped, ModelError, is_unavailable

TOOL_RESULT_PREVIEW = 2000

log = logging.getLogger(__name__)


class Hooks(Protocol):
    def token(self, text: str, logprobs: list[dict[str, Any]] | None = None) -> None: ...
    def tool_call(self, name: str, arguments: dict[str, Any]) -> None: ...
    def tool_result(self, name: str, content: str) -> None: ...
    def check(self) -> None:
        """Raise JobStopped when the job was cancelled or ran out of time."""


@dataclass(frozen=True)
class AgentResult:
    content: str
    prompt_tokens: int | None  # None when the model server did not report it
    completion_tokens: int
    finish_reason: str
    # The client's tools the model called, in OpenAI's shape; None when it answered text.
    tool_calls: list[dict[str, Any]] | None = None


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    tool_rounds: int
    prompt_tokens: int | None
    completion_tokens: int
    finish_reason: str


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _chunk_logprobs(chunk: AIMessageChunk) -> list[dict[str, Any]] | None:
    """A chunk's token log probabilities as OpenAI's logprobs.content entries."""
    found = (chunk.response_metadata or {}).get("logprobs")
    if isinstance(found, dict):  # OpenAI-compatible servers: {"content": [...]}
        found = found.get("content")
    if not found:
        return None
    return [
        {**_logprob(entry), "top_logprobs": [_logprob(top) for top in _get(entry, "top_logprobs")]}
        for entry in found
    ]


def _get(entry: Any, name: str) -> Any:
    # The ollama client gives pydantic models, OpenAI-compatible servers plain JSON.
    return (entry.get(name) if isinstance(entry, dict) else getattr(entry, name, None)) or []


def _logprob(entry: Any) -> dict[str, Any]:
    token = _get(entry, "token") or ""
    return {
        "token": token,
        "logprob": float(_get(entry, "logprob") or 0.0),
        "bytes": list(_get(entry, "bytes")) or list(token.encode()),
    }


def openai_tool_calls(message: AIMessage) -> list[dict[str, Any]]:
    """The model's tool calls as OpenAI's message.tool_calls (arguments as JSON text)."""
    calls = [
        (call.get("id"), call["name"], json.dumps(call.get("args") or {}, ensure_ascii=False))
        for call in message.tool_calls
    ]
    # Arguments that were not valid JSON still reach the client, as the model wrote them.
    calls += [
        (call.get("id"), call.get("name") or "", call.get("args") or "")
        for call in message.invalid_tool_calls
    ]
    return [
        {
            "id": call_id or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        for call_id, name, arguments in calls
    ]


def _finish_reason(message: AIMessage) -> str | None:
    metadata = message.response_metadata or {}
    return metadata.get("done_reason") or metadata.get("finish_reason")


def stream_reply(
    model: Any, messages: Sequence[AnyMessage], hooks: Hooks, *, retry_seconds: float
) -> tuple[AIMessage, int]:
    """Stream one model reply. A server that is not there (refused, or 503 while it loads)
    is tried again for up to `retry_seconds`, and only before the first chunk: a model
    server restarting under a supervisor is waited for, a dead one fails the job.

    Returns the reply and how many text chunks it streamed.
    """
    started = time.monotonic()
    attempt = 0
    while True:
        merged: AIMessageChunk | None = None
        text_chunks = 0
        try:
            for chunk in model.stream(list(messages)):
                merged = chunk if merged is None else merged + chunk
                text = _text(chunk.content)
                if text:
                    text_chunks += 1
                    hooks.token(text, _chunk_logprobs(chunk))
            break
        except JobStopped:
            raise
        except Exception as exc:
            if merged is not None or not is_unavailable(exc):
                raise
            delay = min(0.25 * 2**attempt, 2.0)
            waited = time.monotonic() - started
            if waited + delay > retry_seconds:
                raise ModelError(
                    "model_unavailable",
                    f"The model server cannot be reached or is not ready (tried "
                    f"{attempt + 1} times over {waited:.0f} s).",
                ) from exc
            attempt += 1
            log.warning(
                "model server not available (%s%s); trying again in %.2f s",
                exc.__class__.__name__,
                f", HTTP {exc.status_code}" if getattr(exc, "status_code", None) else "",
                delay,
            )
            _pause(delay, hooks)
    if merged is None:
        raise ModelError("model_bad_response", "The model server sent an empty reply.")
    message = message_chunk_to_message(merged)
    if _finish_reason(message) is None:
        # The stream ended without the server's final record: the answer is cut short,
        # and must not be reported as complete.
        raise ModelError("model_stream_truncated", "The model server ended the reply early.")
    return message, text_chunks


def _pause(seconds: float, hooks: Hooks) -> None:
    """Sleep, while a cancel or the time limit still stops the job within its poll."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        hooks.check()
        time.sleep(min(left, 0.1))


@dataclass(frozen=True)
class AgentRun:
    """What one run of the agent uses: its model, tools, hooks and limits.

    The graph itself is compiled once per process (`agent_graph`); each run passes its own
    AgentRun as the graph's context, so nothing is built per job but the model.
    `client_model`, the model bound to the client's tools, replaces `model` and `tools`:
    its tool calls end the graph.
    """

    model: BaseChatModel
    hooks: Hooks
    max_tool_rounds: int
    connect_retry_seconds: float
    tools: Sequence[BaseTool] = ()
    client_model: Runnable | None = None

    @functools.cached_property
    def tools_by_name(self) -> dict[str, BaseTool]:
        return {tool.name: tool for tool in self.tools}

    @functools.cached_property
    def model_with_tools(self) -> Runnable:
        return self.model.bind_tools(list(self.tools)) if self.tools else self.model


def _llm(state: AgentState, runtime: Runtime[AgentRun]) -> dict[str, Any]:
    run = runtime.context
    use_tools = bool(run.tools) and state["tool_rounds"] < run.max_tool_rounds
    chosen = run.client_model or (run.model_with_tools if use_tools else run.model)
    reply, text_chunks = stream_reply(
        chosen, state["messages"], run.hooks, retry_seconds=run.connect_retry_seconds
    )
    usage = reply.usage_metadata
    if usage:
        prompt = state["prompt_tokens"]
        prompt = None if prompt is None else prompt + usage.get("input_tokens", 0)
        completion = usage.get("output_tokens", 0)
    else:
        # Some servers (llama.cpp) send no usage when streaming: they stream one token
        # per chunk, so the chunks count the completion; the prompt stays unknown.
        prompt, completion = None, text_chunks
    finish_reason = _finish_reason(reply) or "stop"
    if run.client_model is not None and (reply.tool_calls or reply.invalid_tool_calls):
        finish_reason = "tool_calls"
    return {
        "messages": [reply],
        "prompt_tokens": prompt,
        "completion_tokens": state["completion_tokens"] + completion,
        "finish_reason": finish_reason,
    }


def _run_tools(state: AgentState, runtime: Runtime[AgentRun]) -> dict[str, Any]:
    run = runtime.context
    results = []
    for call in state["messages"][-1].tool_calls:
        name, arguments = call["name"], call.get("args") or {}
        run.hooks.tool_call(name, arguments)
        tool = run.tools_by_name.get(name)
        if tool is None:
            content = f"There is no tool named {name!r}."
        else:
            content = str(tool.invoke(arguments))
        run.hooks.tool_result(name, content[:TOOL_RESULT_PREVIEW])
        results.append(ToolMessage(content=content, tool_call_id=call["id"], name=name))
    return {"messages": results, "tool_rounds": state["tool_rounds"] + 1}


def _after_llm(state: AgentState, runtime: Runtime[AgentRun]) -> str:
    run = runtime.context
    if run.client_model is not None:
        return END  # the client's tool calls are the answer
    last = state["messages"][-1]
    return "tools" if run.tools and getattr(last, "tool_calls", None) else END


@functools.cache
def agent_graph() -> CompiledStateGraph:
    """The agent graph, compiled once per process (compiling costs milliseconds per job)."""
    graph = StateGraph(AgentState, context_schema=AgentRun)
    graph.add_node("llm", _llm)
    graph.add_node("tools", _run_tools)
    graph.add_edge(START, "llm")
    graph.add_conditional_edges("llm", _after_llm, {"tools": "tools", END: END})
    graph.add_edge("tools", "llm")
    return graph.compile()


def run_agent(run: AgentRun, messages: Sequence[AnyMessage]) -> AgentResult:
    """Run the agent on `messages` until it answers (text, or the client's tool calls)."""
    state = agent_graph().invoke(
        {
            "messages": list(messages),
            "tool_rounds": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "finish_reason": "stop",
        },
        {"recursion_limit": 2 * run.max_tool_rounds + 4},
        context=run,
    )
    final = state["messages"][-1]
    return AgentResult(
        content=_text(final.content),
        prompt_tokens=state["prompt_tokens"],
        completion_tokens=state["completion_tokens"],
        finish_reason=state["finish_reason"],
        tool_calls=openai_tool_calls(final) if state["finish_reason"] == "tool_calls" else None,
    )
