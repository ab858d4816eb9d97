"""The agent's tools, built from config. The search backend is injectable for tests."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import redis
from langchain_core.tools import BaseTool

from worker.agent.search import DdgsBackend, SearchBackend, WebSearch, make_web_search_tool


def search_backend(spec: str, timeout: float) -> SearchBackend:
    """`ddgs` (the default), or `module:factory` returning a backend (tests, other engines)."""
    if spec == "ddgs":
        return DdgsBackend(timeout=timeout)
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)()


def web_search_tool(
    config: Mapping[str, Any],
    client: redis.Redis,
    *,
    stop_check: Callable[[], None] | None = None,
) -> BaseTool:
    search = WebSearch(
        search_backend(config["SEARCH_BACKEND"], config["SEARCH_TIMEOUT"]),
        redis=client,
        key_prefix=config["REDIS_KEY_PREFIX"],
        cache_ttl=config["SEARCH_CACHE_TTL"],
        timeout=config["SEARCH_TIMEOUT"],
        max_results=config["SEARCH_MAX_RESULTS"],
        stop_check=stop_check,
    )
    return make_web_search_tool(search)
