"""The agent's web_search tool: merging, timeouts, failures, the Redis cache and the ddgs wrapper.

No test touches the network: WebSearch gets a fake backend, and DdgsBackend gets a stub in place
of ``ddgs.DDGS``. The cache tests use the machine's Redis (db 15) under a per-test key prefix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator

import ddgs
import pytest
import redis
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from worker.agent.search import (
    DdgsBackend,
    SearchResult,
    SearchUnavailable,
    WebSearch,
    make_web_search_tool,
    normalize_url,
)

UNAVAILABLE_PREFIX = "Web search is unavailable right now ("
UNAVAILABLE_SUFFIX = "Answer from your own knowledge and say that the search failed."


def text_item(n: int | str, url: str | None = None, title: str | None = None) -> dict:
    return {
        "title": title or f"Text {n}",
        "href": url or f"https://example.org/text/{n}",
        "body": f"Body of text {n}",
    }


def news_item(n: int | str, url: str | None = None, title: str | None = None) -> dict:
    return {
        "date": "2025-11-20T08:30:00+00:00",
        "title": title or f"News {n}",
        "body": f"Body of news {n}",
        "url": url or f"https://news.example.com/{n}",
        "image": "https://news.example.com/img.png",
        "source": "Example Times",
    }


class FakeBackend:
    """Records calls; per kind ("text"/"news") returns results, raises, sleeps or hangs."""

    def __init__(
        self,
        *,
        text: list[dict] | None = None,
        news: list[dict] | None = None,
        fail: dict[str, BaseException] | None = None,
        hang: set[str] | frozenset[str] = frozenset(),
        delay: float = 0.0,
    ) -> None:
        self.results = {"text": text or [], "news": news or []}
        self.fail = fail or {}
        self.hang = set(hang)
        self.delay = delay
        self.release = threading.Event()
        self.calls: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()

    def text(self, query: str, max_results: int) -> list[dict]:
        return self._respond("text", query, max_results)

    def news(self, query: str, max_results: int) -> list[dict]:
        return self._respond("news", query, max_results)

    def _respond(self, kind: str, query: str, max_results: int) -> list[dict]:
        with self._lock:
            self.calls.append((kind, query, max_results))
        if self.delay:
            time.sleep(self.delay)
        if kind in self.hang:
            self.release.wait(10)
        if kind in self.fail:
            raise self.fail[kind]
        return list(self.results[kind])


@pytest.fixture
def backends() -> Iterator[list[FakeBackend]]:
    """Collects fake backends so that hung calls are released when the test ends."""
    made: list[FakeBackend] = []
    yield made
    for backend in made:
        backend.release.set()


@pytest.fixture
def fake(backends):
    def make(**kwargs) -> FakeBackend:
        backend = FakeBackend(**kwargs)
        backends.append(backend)
        return backend

    return make


@pytest.fixture
def redis_db() -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis(host="127.0.0.1", port=6379, db=15, decode_responses=True)
    prefix = f"gwtest:{os.getpid()}:{uuid.uuid4().hex[:8]}:"
    yield client, prefix
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def keys_under(client: redis.Redis, prefix: str) -> list[str]:
    return list(client.scan_iter(match=prefix + "*", count=1000))


# --- merging and normalization ------------------------------------------------------------


def test_merges_interleaved_news_first_dedups_and_caps(fake):
    backend = fake(
        news=[
            news_item(1, url="HTTPS://Example.COM/story/?utm_source=ddg&utm_medium=x&id=7"),
            news_item(2, title="Shared Title"),
            news_item(3),
        ],
        text=[
            text_item(1, url="https://example.com/story?id=7"),  # same URL as news 1
            text_item(2, title="shared   title"),  # same title as news 2
            text_item(3),
            text_item(4),
        ],
    )
    results = WebSearch(backend, max_results=4).search("python release")

    assert [r.title for r in results] == ["News 1", "Shared Title", "News 3", "Text 3"]
    assert len(results) == 4
    first = results[0]
    assert first == SearchResult(
        title="News 1",
        url="HTTPS://Example.COM/story/?utm_source=ddg&utm_medium=x&id=7",
        snippet="Body of news 1",
        source="news",
        date="2025-11-20T08:30:00+00:00",
        publisher="Example Times",
    )
    assert results[3] == SearchResult(
        title="Text 3", url="https://example.org/text/3", snippet="Body of text 3", source="text"
    )
    assert sorted(backend.calls) == [("news", "python release", 4), ("text", "python release", 4)]


def test_cap_applies_when_only_one_kind_has_results(fake):
    backend = fake(text=[text_item(n) for n in range(10)])
    results = WebSearch(backend, max_results=3).search("q")
    assert [r.title for r in results] == ["Text 0", "Text 1", "Text 2"]


def test_skips_items_without_title_or_url_and_non_dicts(fake):
    backend = fake(text=[{"body": "orphan"}, "junk", text_item(1)])  # type: ignore[list-item]
    assert [r.title for r in WebSearch(backend).search("q")] == ["Text 1"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("HTTPS://WWW.Example.com/Path", "https://www.example.com/Path"),
        ("https://example.com/a/", "https://example.com/a"),
        ("https://example.com/", "https://example.com"),
        ("https://example.com/a?utm_source=x&UTM_Campaign=y&q=1", "https://example.com/a?q=1"),
        ("https://example.com:443/a#section", "https://example.com/a"),
    ],
)
def test_normalize_url_equates(a, b):
    assert normalize_url(a) == normalize_url(b)


def test_normalize_url_keeps_meaningful_differences():
    assert normalize_url("https://example.com/Path") != normalize_url("https://example.com/path")
    assert normalize_url("https://example.com/a?q=1") != normalize_url("https://example.com/a?q=2")


# --- concurrency, failures and timeouts ---------------------------------------------------


def test_text_and_news_run_concurrently(fake):
    backend = fake(text=[text_item(1)], news=[news_item(1)], delay=0.5)
    started = time.monotonic()
    results = WebSearch(backend, timeout=5).search("q")
    elapsed = time.monotonic() - started
    assert len(results) == 2
    assert elapsed < 0.9, f"searches ran one after the other ({elapsed:.2f}s)"


@pytest.mark.parametrize("failing", ["text", "news"])
def test_one_side_failing_returns_the_other(fake, failing):
    backend = fake(
        text=[text_item(1)], news=[news_item(1)], fail={failing: RuntimeError("engine broke")}
    )
    results = WebSearch(backend).search("q")
    surviving = "news" if failing == "text" else "text"
    assert [r.source for r in results] == [surviving]


@pytest.mark.parametrize(
    ("errors", "reason"),
    [
        ((SearchUnavailable("rate limited"), SearchUnavailable("rate limited")), "rate limited"),
        ((ConnectionError("refused"), OSError("no route")), "offline"),
        ((RatelimitException("202"), TimeoutError()), "rate limited, timed out"),
        ((ValueError("weird"), ValueError("weird")), "search failed"),
    ],
)
def test_both_failing_raises_and_run_explains(fake, errors, reason):
    news_error, text_error = errors
    backend = fake(fail={"news": news_error, "text": text_error})
    web = WebSearch(backend)

    with pytest.raises(SearchUnavailable) as caught:
        web.search("q")
    assert caught.value.reason == reason

    text = web.run("q")
    assert text == f"{UNAVAILABLE_PREFIX}{reason}). {UNAVAILABLE_SUFFIX}"


def test_hanging_backend_returns_within_timeout(fake):
    backend = fake(hang={"text", "news"})
    web = WebSearch(backend, timeout=0.3)

    started = time.monotonic()
    with pytest.raises(SearchUnavailable, match="timed out"):
        web.search("q")
    assert time.monotonic() - started < 0.3 + 0.3

    started = time.monotonic()
    assert web.run("q").startswith(f"{UNAVAILABLE_PREFIX}timed out)")
    assert time.monotonic() - started < 0.3 + 0.3


def test_one_side_hanging_still_returns_the_other(fake):
    backend = fake(text=[text_item(1)], hang={"news"})
    started = time.monotonic()
    results = WebSearch(backend, timeout=0.3).search("q")
    assert time.monotonic() - started < 0.3 + 0.3
    assert [r.title for r in results] == ["Text 1"]


def test_backend_returning_garbage_counts_as_failure(fake):
    backend = fake(text=[text_item(1)])
    backend.news = lambda query, max_results: "not a list"  # type: ignore[method-assign]
    assert [r.title for r in WebSearch(backend).search("q")] == ["Text 1"]


# --- empty query, no results, formatting --------------------------------------------------


def test_empty_query_raises_and_run_asks_for_a_query(fake):
    backend = fake(text=[text_item(1)])
    web = WebSearch(backend)
    for query in ("", "   \n\t "):
        with pytest.raises(SearchUnavailable, match="empty query"):
            web.search(query)
        assert "No search query was given" in web.run(query)
    assert backend.calls == []


def test_no_results_text(fake):
    assert WebSearch(fake()).run("  zzqx   nothing ") == 'No results for "zzqx nothing".'


def test_run_formats_a_numbered_list_with_news_dates(fake):
    long_body = "word " * 200
    backend = fake(
        news=[news_item(1)],
        text=[{"title": "Python", "href": "https://python.org/", "body": long_body}],
    )
    text = WebSearch(backend).run("python")
    lines = text.splitlines()
    assert lines[0] == 'Web search results for "python":'
    assert lines[1] == "1. [news, 2025-11-20, Example Times] News 1 — https://news.example.com/1"
    assert lines[2] == "   Body of news 1"
    assert lines[3] == "2. Python — https://python.org/"
    assert lines[4].startswith("   word word")
    assert lines[4].endswith("…")
    assert len(lines[4]) < 320
    assert len(lines) == 5


# --- Redis cache --------------------------------------------------------------------------


def test_cache_hit_skips_backend_and_ignores_case_and_spacing(fake, redis_db):
    client, prefix = redis_db
    backend = fake(text=[text_item(1)], news=[news_item(1)])
    web = WebSearch(backend, redis=client, key_prefix=prefix, cache_ttl=120)

    first = web.search("Hello World")
    assert len(backend.calls) == 2

    assert web.search("Hello World") == first
    assert web.search("  hello \t  WORLD ") == first
    assert len(backend.calls) == 2

    key = f"{prefix}search:{hashlib.sha256(b'hello world').hexdigest()}"
    assert keys_under(client, prefix) == [key]
    assert 0 < client.ttl(key) <= 120
    assert json.loads(client.get(key))[0]["title"] == "News 1"


def test_cache_works_with_a_bytes_redis_client(fake, redis_db):
    _, prefix = redis_db
    client = redis.Redis(host="127.0.0.1", port=6379, db=15)  # decode_responses=False
    try:
        backend = fake(news=[news_item("é")])
        web = WebSearch(backend, redis=client, key_prefix=prefix)
        first = web.search("q")
        assert web.search("q") == first
        assert len(backend.calls) == 2
    finally:
        client.close()


def test_failures_are_not_cached(fake, redis_db):
    client, prefix = redis_db
    broken = fake(fail={"text": RuntimeError("x"), "news": RuntimeError("y")})
    with pytest.raises(SearchUnavailable):
        WebSearch(broken, redis=client, key_prefix=prefix).search("q")
    assert keys_under(client, prefix) == []

    working = fake(text=[text_item(1)])
    assert len(WebSearch(working, redis=client, key_prefix=prefix).search("q")) == 1
    assert len(working.calls) == 2


def test_partial_results_are_returned_but_not_cached(fake, redis_db):
    client, prefix = redis_db
    backend = fake(text=[text_item(1)], fail={"news": RuntimeError("x")})
    web = WebSearch(backend, redis=client, key_prefix=prefix)
    assert len(web.search("q")) == 1
    assert keys_under(client, prefix) == []


def test_malformed_cache_entry_is_ignored(fake, redis_db):
    client, prefix = redis_db
    backend = fake(text=[text_item(1)])
    web = WebSearch(backend, redis=client, key_prefix=prefix)
    client.set(web.cache_key("q"), "{not json", ex=60)
    assert [r.title for r in web.search("q")] == ["Text 1"]
    assert json.loads(client.get(web.cache_key("q")))[0]["title"] == "Text 1"


def test_redis_down_still_searches(fake, caplog):
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    backend = fake(text=[text_item(1)])
    web = WebSearch(backend, redis=client, key_prefix="gwtest:down:")
    with caplog.at_level(logging.WARNING, logger="worker.agent.search"):
        assert [r.title for r in web.search("q")] == ["Text 1"]
        assert "1. Text 1" in web.run("q")
    assert "cache unavailable" in caplog.text
    assert len(backend.calls) == 4


# --- the LangChain tool -------------------------------------------------------------------


def test_tool_name_args_and_invoke(fake):
    backend = fake(text=[text_item(1)])
    tool = make_web_search_tool(WebSearch(backend))

    assert tool.name == "web_search"
    assert list(tool.args) == ["query"]
    assert "current events" in tool.description

    text = tool.invoke({"query": "what is new"})
    assert text.startswith('Web search results for "what is new":\n1. Text 1 — ')
    assert backend.calls[0][1] == "what is new"


def test_tool_returns_unavailable_text_instead_of_raising(fake):
    backend = fake(fail={"text": RuntimeError("x"), "news": RuntimeError("y")})
    text = make_web_search_tool(WebSearch(backend)).invoke({"query": "q"})
    assert text.startswith(UNAVAILABLE_PREFIX)
    assert text.endswith(UNAVAILABLE_SUFFIX)


# --- DdgsBackend over a stubbed ddgs.DDGS -------------------------------------------------


class StubDDGS:
    """Stands in for ddgs.DDGS: records the call, then raises or returns ``outcome``."""

    outcome: BaseException | list[dict] = []
    calls: list[tuple[str, str, dict]] = []
    timeouts: list[float | None] = []

    def __init__(self, proxy=None, timeout=5, *, verify=True) -> None:
        type(self).timeouts.append(timeout)

    def text(self, query, **kwargs):
        return self._answer("text", query, kwargs)

    def news(self, query, **kwargs):
        return self._answer("news", query, kwargs)

    def _answer(self, kind, query, kwargs):
        type(self).calls.append((kind, query, kwargs))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@pytest.fixture
def stub_ddgs(monkeypatch):
    StubDDGS.outcome = []
    StubDDGS.calls = []
    StubDDGS.timeouts = []
    monkeypatch.setattr(ddgs, "DDGS", StubDDGS)
    return StubDDGS


def test_ddgs_backend_calls_ddgs_text_and_news(stub_ddgs):
    stub_ddgs.outcome = [text_item(1)]
    backend = DdgsBackend(timeout=3.0)
    assert backend.text("q", 4) == [text_item(1)]
    assert backend.news("q", 4) == [text_item(1)]
    assert [(kind, query, kw["max_results"]) for kind, query, kw in stub_ddgs.calls] == [
        ("text", "q", 4),
        ("news", "q", 4),
    ]
    assert stub_ddgs.timeouts == [3.0, 3.0]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RatelimitException("https://duckduckgo.com 202 Ratelimit"), "rate limited"),
        (TimeoutException("operation timed out"), "timed out"),
        (DDGSException("ConnectError: dns error: failed to lookup address"), "offline"),
        (DDGSException("something odd"), "search failed"),
    ],
)
def test_ddgs_backend_maps_ddgs_exceptions(stub_ddgs, error, reason):
    stub_ddgs.outcome = error
    with pytest.raises(SearchUnavailable) as caught:
        DdgsBackend().text("q", 5)
    assert caught.value.reason == reason
    assert caught.value.__cause__ is error


def test_ddgs_no_results_is_an_empty_list(stub_ddgs):
    stub_ddgs.outcome = DDGSException("No results found.")
    assert DdgsBackend().news("q", 5) == []
    assert WebSearch(DdgsBackend()).run("q") == 'No results for "q".'


def test_ddgs_rate_limit_through_the_tool(stub_ddgs):
    stub_ddgs.outcome = RatelimitException("202 Ratelimit")
    tool = make_web_search_tool(WebSearch(DdgsBackend(timeout=1.0), timeout=2.0))
    assert tool.invoke({"query": "q"}) == f"{UNAVAILABLE_PREFIX}rate limited). {UNAVAILABLE_SUFFIX}"
