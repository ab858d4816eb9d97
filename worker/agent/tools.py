"""The agent's tools, built from config. The search backend is injectable for tests."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import redis
from langchain_core.tools import BaseTool

from config.settings import Settings
from worker.agent.search import DdgsBackend, SearchBackend, WebSearch, make_web_search_tool


def search_backend(spec: str, timeout: float) -> SearchBackend:
    """`ddgs` (the default), or `module:factory` returning a backend (tests, other engines)."""
    if spec == "ddgs":
        return DdgsBackend(timeout=timeout)
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)()


def web_search_tool(
    settings: Settings,
    client: redis.Redis,
    *,
    stop_check: Callable[[], None] | None = None,
) -> BaseTool:
    search = WebSearch(
        search_backend(settings.search.backend, settings.search.timeout),
        redis=client,
        key_prefix=settings.redis.key_prefix,
        cache_ttl=settings.search.cache_ttl,
        timeout=settings.search.timeout,
        max_results=settings.search.max_results,
        stop_check=stop_check,
    )
    return make_web_search_tool(search)
