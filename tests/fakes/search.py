"""Search backends for worker processes under test (SEARCH_BACKEND=tests.fakes.search:…)."""

from __future__ import annotations

import time

# A query containing this takes SLOW_SEARCH_SECONDS to answer: a search engine that hangs
# (the worker's own SEARCH_TIMEOUT abandons it first).
SLOW_SEARCH_CUE = "SLOW-SEARCH"
SLOW_SEARCH_SECONDS = 5


class StaticBackend:
    """Always finds the same two pages, naming the query so tests can trace it."""

    def text(self, query: str, max_results: int) -> list[dict]:
        if SLOW_SEARCH_CUE in query:
            time.sleep(SLOW_SEARCH_SECONDS)
        return [
            {
                "title": f"Encyclopedia entry about {query}",
                "href": "https://encyclopedia.example/entry",
                "body": "FACT-FROM-SEARCH: the static backend answered.",
            }
        ][:max_results]

    def news(self, query: str, max_results: int) -> list[dict]:
        if SLOW_SEARCH_CUE in query:
            time.sleep(SLOW_SEARCH_SECONDS)
        return [
            {
                "title": f"Today's news on {query}",
                "url": "https://news.example/today",
                "body": "A news item from the static backend.",
                "date": "2026-11-24T08:00:00+00:00",
                "source": "Example News",
            }
        ][:max_results]


class FailingBackend:
    """Every search fails, as when DuckDuckGo is unreachable or rate-limits."""

    def text(self, query: str, max_results: int) -> list[dict]:
        raise ConnectionError("offline")

    news = text
