"""The SSE client of bench/streams.py: one asyncio process, raw sockets.

Each `GET /api/jobs/<id>/events` is an asyncio protocol that parses HTTP/1.1 (chunked) and
SSE by hand and records, per token, the delay from its write time to the client's read.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter

from stack import HOST

OPEN_CONCURRENCY = 64  # connections being opened at once
OPEN_TIMEOUT = 60.0  # connect -> `start` event, per stream


class Run:
    """What the clients of one step record."""

    def __init__(self, expected_tokens: int, duration: float):
        self.connections: list[SSEStream] = []
        self.expected = expected_tokens
        self.t0 = math.inf  # first scheduled write; set when the writers are started
        self.delays: list[float] = []  # ms: write time -> client read
        self.entry_delays: list[float] = []  # ms: Redis entry id (XADD applied) -> read
        self.per_second = [0] * (int(duration) + 120)  # tokens read per second after t0
        self.tokens = 0
        self.heartbeats = 0
        self.done = 0
        self.errors: Counter[str] = Counter()
        self.error_examples: list[str] = []
        self.open_ms: list[float] = []

    def close_all(self) -> None:
        """Drop every connection still open (a failed or interrupted step): gunicorn's
        graceful shutdown would otherwise wait for them."""
        for stream in self.connections:
            if stream.transport is not None and not stream.transport.is_closing():
                stream.transport.abort()

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.error_examples) < 10:
            self.error_examples.append(f"{kind}: {detail}")


class SSEStream(asyncio.Protocol):
    """One `GET /api/jobs/<id>/events`: HTTP/1.1 (chunked) and SSE parsed by hand."""

    def __init__(self, run: Run, request: bytes, job_id: str):
        loop = asyncio.get_running_loop()
        self.run = run
        self.request = request
        self.job_id = job_id
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.in_body = False
        self.chunked = True
        self.raw = b""  # body bytes not yet de-chunked
        self.sse = b""  # SSE text not yet a whole event
        self.next_seq = 0
        self.outcome: str | None = None
        self.started: asyncio.Future[bool] = loop.create_future()
        self.ended: asyncio.Future[str] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.outcome is None:
            self.fail("disconnect", f"job {self.job_id}: connection closed ({exc})")

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        if not self.started.done():
            self.started.set_result(outcome == "done")
        if not self.ended.done():
            self.ended.set_result(outcome)
        if self.transport is not None:
            self.transport.close()

    def fail(self, kind: str, detail: str) -> None:
        if self.outcome is None:
            self.run.error(kind, detail)
            self.finish(kind)
            if self.transport is not None:
                self.transport.abort()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if self.outcome is not None:
            return
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > 65536:
                    self.fail("http", f"job {self.job_id}: headers too long")
                return
            head, data = self.head[:end], self.head[end + 4 :]
            self.head = b""
            status_line, _, headers = head.partition(b"\r\n")
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or parts[1] != b"200":
                self.fail("http", f"job {self.job_id}: {status_line.decode(errors='replace')}")
                return
            self.chunked = b"transfer-encoding: chunked" in headers.lower()
            self.in_body = True
            if not data:
                return
        if self.chunked:
            try:
                data = self.dechunk(data)
            except ValueError:
                self.fail("http", f"job {self.job_id}: bad chunked encoding")
                return
        if data:
            self.feed(data, now)

    def dechunk(self, data: bytes) -> bytes:
        raw = self.raw + data if self.raw else data
        pos, out = 0, []
        while True:
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(raw[pos:eol].split(b";", 1)[0], 16)
            if size == 0:  # the last chunk: the server ended the response
                self.raw = b""
                payload = b"".join(out)
                if payload:
                    self.feed(payload, time.time())
                if self.outcome is None:
                    self.fail("ended_early", f"job {self.job_id}: response ended before `done`")
                return b""
            start, end = eol + 2, eol + 2 + size
            if len(raw) < end + 2:
                break
            out.append(raw[start:end])
            pos = end + 2
        self.raw = raw[pos:]
        return b"".join(out)

    def feed(self, payload: bytes, now: float) -> None:
        if b"\r" in payload:
            payload = payload.replace(b"\r\n", b"\n")
        blocks = (self.sse + payload if self.sse else payload).split(b"\n\n")
        self.sse = blocks.pop()
        for block in blocks:
            if block:
                self.event(block, now)
                if self.outcome is not None:
                    return

    def event(self, block: bytes, now: float) -> None:
        name, entry_id, data_lines = b"message", b"", []
        for line in block.split(b"\n"):
            if line[:1] == b":":
                self.run.heartbeats += 1
                continue
            key, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if key == b"data":
                data_lines.append(value)
            elif key == b"event":
                name = value
            elif key == b"id":
                entry_id = value
        if not data_lines:
            return  # `retry:` alone, or comments: no event to dispatch
        run = self.run
        if name == b"token":
            try:
                data = json.loads(b"\n".join(data_lines))
                seq, written = data["seq"], data["t"]
            except (ValueError, KeyError, TypeError):
                self.fail("protocol", f"job {self.job_id}: bad token {data_lines!r}"[:200])
                return
            if seq != self.next_seq:
                run.error("sequence", f"job {self.job_id}: token {seq}, expected {self.next_seq}")
            self.next_seq = seq + 1
            run.tokens += 1
            run.delays.append((now - written) * 1000)
            if entry_id:
                run.entry_delays.append(now * 1000 - int(entry_id.split(b"-", 1)[0]))
            if now >= run.t0:
                second = int(now - run.t0)
                if second < len(run.per_second):
                    run.per_second[second] += 1
        elif name == b"start":
            if not self.started.done():
                self.started.set_result(True)
        elif name == b"done":
            if self.next_seq != run.expected:
                run.error(
                    "missing_tokens",
                    f"job {self.job_id}: done after {self.next_seq} of {run.expected} tokens",
                )
            run.done += 1
            self.finish("done")
        else:
            self.fail("event", f"job {self.job_id}: unexpected `{name.decode()}` event")


async def open_streams(run: Run, job_ids: list[str], port: int, api_key: str) -> list[SSEStream]:
    """One connection per job, OPEN_CONCURRENCY at a time; each counts as open once its
    `start` event arrived (the relay serves it)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(job_id: str) -> SSEStream:
        request = (
            f"GET /api/jobs/{job_id}/events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"X-API-Key: {api_key}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        stream = SSEStream(run, request, job_id)
        run.connections.append(stream)
        async with gate:
            failures = run.errors["connect"] + run.errors["open_timeout"]
            if failures >= OPEN_CONCURRENCY:  # the server takes no more: do not wait for each
                stream.fail("not_opened", f"job {job_id}: {failures} streams failed to open")
                return stream
            began = time.perf_counter()
            try:
                await loop.create_connection(lambda: stream, HOST, port)
            except OSError as exc:
                stream.fail("connect", f"job {job_id}: {exc}")
                return stream
            try:
                if await asyncio.wait_for(asyncio.shield(stream.started), OPEN_TIMEOUT):
                    run.open_ms.append((time.perf_counter() - began) * 1000)
            except TimeoutError:
                stream.fail("open_timeout", f"job {job_id}: no `start` in {OPEN_TIMEOUT:g} s")
        return stream

    return list(await asyncio.gather(*(one(job_id) for job_id in job_ids)))


async def loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    """How late the client's event loop wakes up: its own saturation."""
    period = 0.01
    while not stop.is_set():
        began = time.perf_counter()
        await asyncio.sleep(period)
        samples.append((time.perf_counter() - began - period) * 1000)
