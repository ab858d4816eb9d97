"""The LangGraph agent against the fake Ollama server, without Celery."""

from __future__ import annotations

import threading
import time

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama

from tests.fakes.ollama import FakeOllama
from worker.agent.errors import JobCancelled, ModelError, model_error
from worker.agent.graph import AgentRun, run_agent


class RecordingHooks:
    def __init__(self, cancel_after: int | None = None):
        self.tokens: list[str] = []
        self.logprobs: list[list[dict] | None] = []
        self.tool_calls: list[tuple[str, dict]] = []
        self.tool_results: list[tuple[str, str]] = []
        self.cancel_after = cancel_after
        self.cancelled = threading.Event()  # a cancel that arrives between tokens

    def token(self, text: str, logprobs: list[dict] | None = None) -> None:
        if self.cancel_after is not None and len(self.tokens) >= self.cancel_after:
            raise JobCancelled
        self.tokens.append(text)
        self.logprobs.append(logprobs)

    def tool_call(self, name, arguments) -> None:
        self.tool_calls.append((name, arguments))

    def tool_result(self, name, content) -> None:
        self.tool_results.append((name, content))

    def check(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled


@tool
def web_search(query: str) -> str:
    """Search the web for current information."""
    return f"SEARCHED: {query}"


@pytest.fixture(scope="module")
def fake():
    with FakeOllama() as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(fake):
    fake.reset()


def run(
    fake,
    text: str,
    hooks: RecordingHooks,
    *,
    tools=(web_search,),
    rounds=2,
    retry_seconds=1.0,
    **model_kwargs,
):
    model = ChatOllama(model="llama3.2:3b", base_url=fake.url, **model_kwargs)
    run = AgentRun(
        model=model,
        hooks=hooks,
        max_tool_rounds=rounds,
        connect_retry_seconds=retry_seconds,
        tools=list(tools),
    )
    messages = [SystemMessage(content="be brief"), HumanMessage(content=text)]
    return run_agent(run, messages)


def test_tokens_stream_through_the_hooks_in_order(fake):
    hooks = RecordingHooks()
    result = run(fake, "hello", hooks)
    assert (
        "".join(hooks.tokens)
        == result.content
        == "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9" + "".join(f" w{i}" for i in range(10, 20))
    )
    assert len(hooks.tokens) == 20
    assert result.completion_tokens == 20
    assert result.prompt_tokens and result.prompt_tokens > 0
    assert result.finish_reason == "stop"


def test_a_tool_call_runs_the_tool_and_feeds_the_result_back(fake):
    hooks = RecordingHooks()
    result = run(fake, "please search the news", hooks)
    assert hooks.tool_calls == [("web_search", {"query": "please search the news"})]
    assert hooks.tool_results[0][0] == "web_search"
    assert "SEARCHED: please search the news" in hooks.tool_results[0][1]
    assert "SEARCHED" in result.content  # the fake quotes the tool result it was given
    second = fake.requests[-1]
    assert second["messages"][-1]["role"] == "tool"


def test_without_tools_the_model_is_not_offered_any(fake):
    hooks = RecordingHooks()
    run(fake, "please search the news", hooks, tools=())
    assert hooks.tool_calls == []
    assert not fake.requests[-1].get("tools")


def test_tool_rounds_are_bounded_then_the_model_must_answer(fake):
    fake.tool_trigger = r"."  # the fake would call the tool forever
    hooks = RecordingHooks()
    result = run(fake, "search everything", hooks, rounds=1)
    assert len(hooks.tool_calls) == 1
    assert result.content  # the last call offered no tools, so the model answered
    assert not fake.requests[-1].get("tools")


def test_a_cut_off_stream_is_an_error_not_an_answer(fake):
    fake.mode = "disconnect_mid_stream"
    hooks = RecordingHooks()
    with pytest.raises(Exception) as caught:
        run(fake, "hello", hooks)
    assert model_error(caught.value, "llama3.2:3b").code == "model_stream_truncated"


def test_an_unknown_model_maps_to_model_not_found(fake):
    fake.models = ["qwen2.5:7b"]
    with pytest.raises(Exception) as caught:
        run(fake, "hello", RecordingHooks())
    assert model_error(caught.value, "llama3.2:3b").code == "model_not_found"


def later(seconds: float, action) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_a_model_server_back_within_the_retry_time_answers_the_job(fake):
    # A supervisor restarting the model server: nothing listens for a second.
    fake.stop()
    later(1.0, fake.start)
    hooks = RecordingHooks()
    result = run(fake, "hello", hooks, tools=(), retry_seconds=10)
    assert result.content == "".join(hooks.tokens) and hooks.tokens
    assert len(fake.requests) == 1  # the refused tries never reached it


def test_a_model_server_loading_its_model_is_waited_for(fake):
    # llama.cpp's server answers 503 until its model is loaded.
    fake.mode, fake.error_status, fake.error_message = "error", 503, "Loading model"
    later(1.0, lambda: setattr(fake, "mode", "ok"))
    hooks = RecordingHooks()
    result = run(fake, "hello", hooks, tools=(), retry_seconds=10)
    assert result.content and hooks.tokens
    assert len(fake.requests) >= 2  # 503s first, then the answer


def test_a_model_server_that_stays_down_fails_the_job_once_the_retry_time_is_spent(fake):
    fake.stop()
    try:
        started = time.monotonic()
        with pytest.raises(ModelError) as caught:
            run(fake, "hi", RecordingHooks(), tools=(), retry_seconds=1.5)
        waited = time.monotonic() - started
    finally:
        fake.start()
    assert caught.value.code == "model_unavailable"
    assert "cannot be reached" in caught.value.message
    assert model_error(caught.value, "llama3.2:3b").code == "model_unavailable"
    # It kept trying for most of the time allowed, and not much past it.
    assert 0.7 <= waited < 1.5 + 2.0


def test_an_error_other_than_unavailable_is_not_retried(fake):
    fake.mode, fake.error_status = "error", 500
    with pytest.raises(Exception) as caught:
        run(fake, "hi", RecordingHooks(), tools=(), retry_seconds=10)
    assert model_error(caught.value, "llama3.2:3b").code == "model_error"
    assert len(fake.requests) == 1


def test_a_cancel_while_waiting_for_the_model_server_stops_the_job(fake):
    fake.stop()
    hooks = RecordingHooks()
    later(0.5, hooks.cancelled.set)
    try:
        started = time.monotonic()
        with pytest.raises(JobCancelled):
            run(fake, "hi", hooks, tools=(), retry_seconds=30)
        stopped_after = time.monotonic() - started
    finally:
        fake.start()
    assert stopped_after < 5  # far before the 30 s of retries


def test_a_stop_raised_by_a_hook_ends_generation_at_once(fake):
    fake.token_delay = 0.01
    hooks = RecordingHooks(cancel_after=3)
    with pytest.raises(JobCancelled):
        run(fake, "hello", hooks)
    assert hooks.tokens == ["w0", " w1", " w2"]


def test_model_error_passes_model_errors_through_and_hides_internals():
    original = ModelError("model_timeout", "slow")
    assert model_error(original, "m") is original
    internal = model_error(KeyError("secret detail"), "m")
    assert internal.code == "internal_error"
    assert "secret detail" not in internal.message
