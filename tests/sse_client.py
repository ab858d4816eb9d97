"""Reading the gateway's text/event-stream responses (`GET /api/jobs/<id>/events`).

One parser of `id:` / `event:` / `data:` lines for every test that reads a stream: events
are dispatched at a blank line, `data` is JSON, lines starting with `:` are comments
(heartbeats).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import requests

TERMINAL = {"done", "error", "cancelled"}


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: dict


class SseParser:
    """Feed it the lines of a stream one by one; it returns each event as it completes."""

    def __init__(self) -> None:
        self.current: dict[str, str] = {}

    def feed(self, line: str) -> SseEvent | None:
        """The event that `line` (without its line ending) completes, if any; comments are
        the caller's to keep or skip (they never complete an event)."""
        if line.startswith(":"):
            return None
        if line == "":
            current, self.current = self.current, {}
            if "event" not in current:
                return None
            data = json.loads(current.get("data") or "{}")
            return SseEvent(current.get("id"), current["event"], data)
        name, _, value = line.partition(":")
        self.current[name] = value.removeprefix(" ")
        return None


def parse_sse_lines(lines: Iterable[str]) -> tuple[list[SseEvent], list[str]]:
    """Events and comment lines of a raw text/event-stream body."""
    parser = SseParser()
    events: list[SseEvent] = []
    comments: list[str] = []
    for line in lines:
        if line.startswith(":"):
            comments.append(line)
        elif (event := parser.feed(line)) is not None:
            events.append(event)
    return events, comments


def iter_sse(response: requests.Response) -> Iterator[SseEvent]:
    """Events of a text/event-stream response as they arrive (heartbeats skipped), until a
    terminal event; the response is closed after."""
    parser = SseParser()
    try:
        for raw in response.iter_lines(decode_unicode=True):
            event = parser.feed(raw or "")
            if event is not None:
                yield event
                if event.event in TERMINAL:
                    return
    finally:
        response.close()


def sse_events(response: requests.Response, *, stop_after: int | None = None) -> list[SseEvent]:
    """Parse a text/event-stream response until a terminal event (or `stop_after` events)."""
    events: list[SseEvent] = []
    stream = iter_sse(response)
    for event in stream:
        events.append(event)
        if stop_after and len(events) >= stop_after:
            stream.close()  # closes the response
            break
    return events


def read_raw(response: requests.Response) -> list[str]:
    """Every line of an SSE response, comments included, up to the terminal event."""
    lines: list[str] = []
    terminal = False
    for raw in response.iter_lines(decode_unicode=True):
        line = raw or ""
        lines.append(line)
        if line.startswith("event:") and line.partition(":")[2].strip() in TERMINAL:
            terminal = True
        elif line == "" and terminal:
            break
    response.close()
    return lines


def names(events: list[SseEvent]) -> list[str]:
    return [event.event for event in events]


def tokens(events: list[SseEvent]) -> list[str]:
    return [event.data["text"] for event in events if event.event == "token"]


def text_of(events: list[SseEvent]) -> str:
    """The text a client ends with: tokens after the last reset, concatenated."""
    text = ""
    for event in events:
        if event.event == "reset":
            text = ""
        elif event.event == "token":
            text += event.data["text"]
    return text
