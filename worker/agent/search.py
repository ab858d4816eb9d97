"""The agent's ``web_search`` tool, on ddgs (DuckDuckGo and other engines, no API key).

Layers:

* ``SearchBackend``: ``text()`` and ``news()`` returning ddgs-shaped dicts. ``DdgsBackend`` is
  the real one (a thin wrapper over ``ddgs.DDGS``); tests inject fakes, so they never touch the
  network.
* ``WebSearch``: runs the news and the text search concurrently, merges, de-duplicates, caps and
  caches the results in Redis; ``run()`` turns them into the text the LLM sees and never raises.
* ``make_web_search_tool``: the LangChain tool named ``web_search``.

Choices:

* An empty or whitespace-only query makes ``search()`` raise ``SearchUnavailable("empty query")``
  (a caller bug should be loud); ``run()`` answers it with a hint to retry with a real query.
* Merge order is interleaved, news first (news 1, text 1, news 2, text 2, ...), so both fresh news
  and reference pages make the cut when ``max_results`` is small.
* De-duplication keeps the first occurrence by normalized URL (scheme and host lowercased,
  default port, fragment, trailing slash and ``utm_*`` parameters dropped) and by title
  (case-insensitive, whitespace collapsed).
* Only complete results (both searches succeeded; an empty answer counts) are cached. Failures
  and partial results (one side failed) are not, so the next call retries the failed side.
* Each call has its own two-thread pool; a search still running at the deadline is abandoned, not
  joined. Its thread ends when the backend returns (ddgs bounds every request by its own timeout).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from itertools import chain, zip_longest
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import ddgs
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from worker.agent.errors import JobStopped

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

# Short, user-safe failure reasons (they end up in the text the LLM sees).
EMPTY_QUERY = "empty query"
RATE_LIMITED = "rate limited"
TIMED_OUT = "timed out"
# How often a search in progress asks whether its job was stopped.
STOP_CHECK_SECONDS = 0.1
OFFLINE = "offline"
FAILED = "search failed"

UNAVAILABLE_TEXT = (
    "Web search is unavailable right now ({reason}). "
    "Answer from your own knowledge and say that the search failed."
)
EMPTY_QUERY_TEXT = (
    "No search query was given. Call web_search again with a short query "
    "describing what to look up."
)

# What ddgs raises (as a plain DDGSException) when every engine answered but found nothing.
_DDGS_NO_RESULTS = "No results found."

_TITLE_CHARS = 150
_SNIPPET_CHARS = 300
_WHITESPACE = re.compile(r"\s+")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")


class SearchUnavailable(Exception):
    """The web search failed; ``reason`` is a short phrase such as "rate limited"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SearchBackend(Protocol):
    """Where results come from. Both methods return ddgs-shaped dicts or raise on failure.

    ``text`` items have ``title``/``href``/``body``; ``news`` items have
    ``title``/``url``/``body``/``date``/``source``.
    """

    def text(self, query: str, max_results: int) -> list[dict]: ...

    def news(self, query: str, max_results: int) -> list[dict]: ...


class DdgsBackend:
    """The real backend: ``ddgs.DDGS().text()`` / ``.news()``.

    ``timeout`` is ddgs's per-request timeout (it also bounds how long ddgs waits for a batch of
    engines). ddgs exceptions become ``SearchUnavailable`` with a short reason; ddgs's
    "No results found." becomes an empty list. A new ``DDGS`` is made per call because its
    engine instances are not meant to be shared between threads.
    """

    def __init__(
        self,
        timeout: float = 5.0,
        *,
        region: str = "us-en",
        safesearch: str = "moderate",
        backend: str = "auto",
    ) -> None:
        self.timeout = timeout
        self.region = region
        self.safesearch = safesearch
        self.backend = backend

    def text(self, query: str, max_results: int) -> list[dict]:
        return self._call("text", query, max_results)

    def news(self, query: str, max_results: int) -> list[dict]:
        return self._call("news", query, max_results)

    def _call(self, kind: str, query: str, max_results: int) -> list[dict]:
        try:
            client = ddgs.DDGS(timeout=self.timeout)  # type: ignore[arg-type]  # float is fine
            method = client.news if kind == "news" else client.text
            return method(
                query,
                region=self.region,
                safesearch=self.safesearch,
                max_results=max_results,
                backend=self.backend,
            )
        except RatelimitException as exc:
            raise SearchUnavailable(RATE_LIMITED) from exc
        except TimeoutException as exc:
            raise SearchUnavailable(TIMED_OUT) from exc
        except DDGSException as exc:
            if str(exc).strip() == _DDGS_NO_RESULTS:
                return []
            raise SearchUnavailable(_reason_from_message(str(exc))) from exc


@dataclass(frozen=True)
class SearchResult:
    """One search hit. ``source`` is "text" or "news"; ``publisher`` is a news item's outlet."""

    title: str
    url: str
    snippet: str
    source: str
    date: str | None = None
    publisher: str | None = None


class WebSearch:
    """News + text search with merging, de-duplication, a timeout and a Redis cache."""

    def __init__(
        self,
        backend: SearchBackend,
        *,
        redis: redis.Redis | None = None,
        key_prefix: str = "gw:",
        cache_ttl: int = 300,
        timeout: float = 8.0,
        max_results: int = 5,
        stop_check: Callable[[], None] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_results < 1:
            raise ValueError("max_results must be at least 1")
        self.backend = backend
        self.redis = redis
        self.key_prefix = key_prefix
        self.cache_ttl = cache_ttl
        self.timeout = timeout
        self.max_results = max_results
        # Raises JobStopped when the job is cancelled: a slow search must not hold it.
        self.stop_check = stop_check

    # --- public API -------------------------------------------------------------------------

    def search(self, query: str) -> list[SearchResult]:
        """Merged results for ``query``, at most ``max_results``; raises ``SearchUnavailable``."""
        cleaned = _collapse(query) if isinstance(query, str) else ""
        if not cleaned:
            raise SearchUnavailable(EMPTY_QUERY)
        key = self.cache_key(cleaned)
        cached = self._cache_get(key)
        if cached is not None:
            log.debug("web search cache hit (%s)", key[-12:])
            return cached
        results, complete = self._search_backend(cleaned)
        if complete:
            self._cache_set(key, results)
        return results

    def run(self, query: str) -> str:
        """The text the LLM sees. Never raises."""
        cleaned = _collapse(query) if isinstance(query, str) else ""
        if not cleaned:
            return EMPTY_QUERY_TEXT
        try:
            results = self.search(cleaned)
        except SearchUnavailable as exc:
            return UNAVAILABLE_TEXT.format(reason=exc.reason)
        except JobStopped:
            raise  # a stop is not a failed search: the job ends here
        except Exception as exc:  # the tool must never raise into the agent
            log.warning("web search crashed: %s", type(exc).__name__, exc_info=True)
            return UNAVAILABLE_TEXT.format(reason="internal error")
        if not results:
            return f'No results for "{cleaned}".'
        return format_results(cleaned, results)

    def cache_key(self, query: str) -> str:
        digest = hashlib.sha256(normalize_query(query).encode("utf-8")).hexdigest()
        return f"{self.key_prefix}search:{digest}"

    # --- backend ----------------------------------------------------------------------------

    def _search_backend(self, query: str) -> tuple[list[SearchResult], bool]:
        """(merged results, whether both searches succeeded); raises if both failed."""
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="web-search")
        try:
            futures: dict[str, Future[Any]] = {
                "news": executor.submit(self.backend.news, query, self.max_results),
                "text": executor.submit(self.backend.text, query, self.max_results),
            }
            done = self._wait(futures.values())
        finally:
            # Never join: a hung backend call keeps its thread, but not the caller.
            executor.shutdown(wait=False, cancel_futures=True)

        found: dict[str, list[SearchResult]] = {}
        failures: dict[str, str] = {}
        for kind, future in futures.items():
            if future not in done:
                future.cancel()
                failures[kind] = TIMED_OUT
                log.warning("web search: %s search timed out after %.1fs", kind, self.timeout)
                continue
            try:
                found[kind] = _to_results(future.result(), kind)
            except Exception as exc:
                failures[kind] = _reason_for(exc)
                log.warning(
                    "web search: %s search failed: %s (%s)",
                    kind,
                    failures[kind],
                    type(exc).__name__,
                )
        if not found:
            raise SearchUnavailable(", ".join(dict.fromkeys(failures.values())))
        merged = merge_results(found.get("news", []), found.get("text", []), self.max_results)
        return merged, not failures

    def _wait(self, futures: Iterable[Future[Any]]) -> set[Future[Any]]:
        """The futures done within the timeout, asking stop_check between short waits."""
        deadline = time.monotonic() + self.timeout
        done: set[Future[Any]] = set()
        pending = set(futures)
        while pending and (left := deadline - time.monotonic()) > 0:
            if self.stop_check is not None:
                self.stop_check()
            finished, pending = wait(pending, timeout=min(left, STOP_CHECK_SECONDS))
            done |= finished
        return done

    # --- cache ------------------------------------------------------------------------------

    def _cache_get(self, key: str) -> list[SearchResult] | None:
        if self.redis is None or self.cache_ttl <= 0:
            return None
        try:
            raw = self.redis.get(key)
        except (RedisError, OSError) as exc:
            log.warning("web search cache unavailable, searching uncached: %s", type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            return [SearchResult(**item) for item in json.loads(raw)]
        except (ValueError, TypeError):
            log.warning("web search: ignoring a malformed cache entry")
            return None

    def _cache_set(self, key: str, results: list[SearchResult]) -> None:
        if self.redis is None or self.cache_ttl <= 0:
            return
        payload = json.dumps([asdict(r) for r in results], ensure_ascii=False)
        try:
            self.redis.set(key, payload, ex=self.cache_ttl)
        except (RedisError, OSError) as exc:
            log.warning("web search cache unavailable, result not cached: %s", type(exc).__name__)


# --- the LangChain tool ---------------------------------------------------------------------

TOOL_DESCRIPTION = (
    "Search the web and get the top results as a numbered list of title, URL and snippet "
    "(news articles are marked with their date). Use it for current events and recent news, "
    "and for facts you do not know or that may have changed since your training: prices, "
    "release dates, versions, scores, people, companies, places. Do not use it for maths, "
    "writing, coding or things you already know well. If it says the search is unavailable, "
    "answer from your own knowledge and say so."
)


class WebSearchInput(BaseModel):
    query: str = Field(
        description="A short search-engine query of a few keywords, e.g. 'Python 3.13 release'."
    )


def make_web_search_tool(web_search: WebSearch) -> BaseTool:
    """The ``web_search`` tool: one ``query: str`` argument, returns ``WebSearch.run`` text."""

    def _web_search(query: str) -> str:
        return web_search.run(query)

    return StructuredTool.from_function(
        func=_web_search,
        name="web_search",
        description=TOOL_DESCRIPTION,
        args_schema=WebSearchInput,
    )


# --- helpers --------------------------------------------------------------------------------


def normalize_query(query: str) -> str:
    """The cache identity of a query: lowercased, whitespace collapsed."""
    return _collapse(query).lower()


def normalize_url(url: str) -> str:
    """URL identity for de-duplication (not for display)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.lower()
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower()
    if (scheme, netloc[-3:]) == ("http", ":80") or (scheme, netloc[-4:]) == ("https", ":443"):
        netloc = netloc.rsplit(":", 1)[0]
    params = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_")
    ]
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), urlencode(params), ""))


def merge_results(
    news: list[SearchResult], text: list[SearchResult], limit: int
) -> list[SearchResult]:
    """Interleave news and text (news first), drop duplicates, keep at most ``limit``."""
    merged: list[SearchResult] = []
    seen_urls: set[str] = set()
    seen_titles: set[str] = set()
    for result in chain.from_iterable(zip_longest(news, text)):
        if result is None:
            continue
        url_key = normalize_url(result.url) if result.url else ""
        title_key = result.title.casefold()
        if (url_key and url_key in seen_urls) or (title_key and title_key in seen_titles):
            continue
        if url_key:
            seen_urls.add(url_key)
        if title_key:
            seen_titles.add(title_key)
        merged.append(result)
        if len(merged) >= limit:
            break
    return merged


def format_results(query: str, results: list[SearchResult]) -> str:
    lines = [f'Web search results for "{query}":']
    for number, result in enumerate(results, start=1):
        marker = ""
        if result.source == "news":
            details = ", ".join(
                d for d in ("news", _short_date(result.date), result.publisher) if d
            )
            marker = f"[{details}] "
        title = _truncate(result.title, _TITLE_CHARS) or "(untitled)"
        head = f"{number}. {marker}{title}"
        lines.append(f"{head} — {result.url}" if result.url else head)
        if result.snippet:
            lines.append(f"   {_truncate(result.snippet, _SNIPPET_CHARS)}")
    return "\n".join(lines)


def _to_results(raw: Any, kind: str) -> list[SearchResult]:
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise TypeError(f"backend returned {type(raw).__name__}, not a list")
    results = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        title = _collapse(item.get("title"))
        # ddgs uses "href" for text and "url" for news; accept either for robustness.
        url = _collapse(item.get("href") or item.get("url"))
        if not title and not url:
            continue
        is_news = kind == "news"
        results.append(
            SearchResult(
                title=title,
                url=url,
                snippet=_collapse(item.get("body")),
                source=kind,
                date=(_collapse(item.get("date")) or None) if is_news else None,
                publisher=(_collapse(item.get("source")) or None) if is_news else None,
            )
        )
    return results


def _reason_for(exc: BaseException) -> str:
    if isinstance(exc, SearchUnavailable):
        return exc.reason
    if isinstance(exc, RatelimitException):
        return RATE_LIMITED
    if isinstance(exc, TimeoutError | TimeoutException):
        return TIMED_OUT
    if isinstance(exc, OSError):  # ConnectionError, DNS failures, unreachable network
        return OFFLINE
    return _reason_from_message(str(exc))


def _reason_from_message(message: str) -> str:
    text = message.lower()
    if any(s in text for s in ("ratelimit", "rate limit", "429", "too many requests")):
        return RATE_LIMITED
    if "timed out" in text or "timeout" in text:
        return TIMED_OUT
    if any(s in text for s in ("connect", "dns", "resolve", "unreachable", "network")):
        return OFFLINE
    return FAILED


def _collapse(value: Any) -> str:
    if value is None:
        return ""
    return _WHITESPACE.sub(" ", str(value)).strip()


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _short_date(date: str | None) -> str | None:
    if date and _ISO_DATETIME.match(date):
        return date[:10]
    return date
