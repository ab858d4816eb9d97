"""A closed-loop HTTP/1.1 load generator: asyncio streams, keep-alive, no HTTP library.

`concurrency` connections each send one request, wait for the whole response, and send the
next, for a number of requests or a duration; every request's latency is kept (request
written -> last byte of the response read). It parses just what the gateway's JSON answers
need (status line, headers, Content-Length or chunked bodies); each piece of a body comes
with the time it arrived, so a streamed answer (NDJSON or Server-Sent Events, one chunk per
event) can be timed token by token once it has ended. Measured on the 2-core VM
of docs/benchmarks.md against a trivial server at 32 concurrent: ~45 us of CPU per request,
i.e. ~20,000 requests/s on one core, where an httpx.AsyncClient needed ~3.3 ms per request
(~300 requests/s at 100 % of a core: its connection pool, not the server, was the limit).
Each benchmark reports the generator's own CPU, so a run shows it stays far below a core.

Calibrate (drives a trivial server in a child process; prints requests/s and the
generator's CPU per request):

    .venv/bin/python bench/loadgen.py [--concurrency 32] [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

HTTP_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    started: float = 0.0  # time.perf_counter() when the request began (connecting included)
    # The body as it arrived: (time.perf_counter(), bytes) per chunk of a chunked body, one
    # piece for any other body. Kept, not parsed, so that the read loop stays cheap.
    pieces: list[tuple[float, bytes]] = field(default_factory=list)


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened after an error or `Connection: close`."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> Response:
        started = time.perf_counter()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader = self.reader
        assert reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        pieces: list[tuple[float, bytes]] = []
        # Transfer-Encoding wins over a Content-Length sent with it (RFC 9112, 6.3).
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked(pieces)
        else:
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            else:  # the body ends when the server closes the connection
                body = await reader.read()
                headers["connection"] = "close"
            pieces.append((time.perf_counter(), body))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body, started, pieces)

    async def _chunked(self, pieces: list[tuple[float, bytes]]) -> bytes:
        reader = self.reader
        assert reader is not None
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(piece for _, piece in pieces)
            piece = await reader.readexactly(size)
            pieces.append((time.perf_counter(), piece))
            await reader.readexactly(2)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def build_request(
    method: str, host: str, port: int, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)  # successful requests only
    statuses: Counter = field(default_factory=Counter)  # every response, by status code
    errors: list[str] = field(default_factory=list)  # failed checks, timeouts, I/O errors
    wall_s: float = 0.0
    stopped_early: bool = False

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def completed(self) -> int:
        return self.ok + len(self.errors)


async def run_load(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    check: Callable[[Response], str | None],
    *,
    concurrency: int,
    requests: int | None = None,
    duration: float | None = None,
    timeout: float = 30.0,
    max_errors: int | None = None,
) -> LoadResult:
    """Keep `concurrency` requests in flight until `requests` have been sent or `duration`
    seconds have passed (requests in flight then are finished and counted).

    `make_request(n)` gives the bytes of the n-th request; `check(response)` returns None
    for a success or what is wrong with it. After `max_errors` errors no new request starts.
    """
    result = LoadResult()
    sent = 0
    started = time.perf_counter()
    deadline = started + duration if duration is not None else None

    def more() -> bool:
        if requests is not None and sent >= requests:
            return False
        if deadline is not None and time.perf_counter() >= deadline:
            return False
        if max_errors is not None and len(result.errors) >= max_errors:
            result.stopped_early = True
            return False
        return True

    async def loop() -> None:
        nonlocal sent
        connection = Connection(host, port)
        try:
            while more():
                raw = make_request(sent)
                sent += 1
                begun = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout):
                        response = await connection.request(raw)
                except TimeoutError:
                    connection.close()
                    result.errors.append(f"timeout after {timeout:g} s")
                    continue
                except HTTP_ERRORS as exc:
                    connection.close()
                    result.errors.append(f"{exc.__class__.__name__}: {exc}")
                    continue
                elapsed = (time.perf_counter() - begun) * 1000
                result.statuses[response.status] += 1
                problem = check(response)
                if problem is None:
                    result.latencies_ms.append(elapsed)
                else:
                    result.errors.append(problem)
        finally:
            connection.close()

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    result.wall_s = time.perf_counter() - started
    return result


# --- calibration ------------------------------------------------------------------------------

_TRIVIAL_SERVER = """
import asyncio, sys
BODY = b'{"id": "00000000-0000-0000-0000-000000000000", "status": "queued"}' + b" " * 400
ANSWER = (b"HTTP/1.1 202 ACCEPTED\\r\\nContent-Type: application/json\\r\\n"
          b"Content-Length: %d\\r\\n\\r\\n" % len(BODY)) + BODY
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def calibrate(concurrency: int, duration: float) -> None:
    """Drive a trivial server in a child process and print what the generator sustains."""
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", _TRIVIAL_SERVER],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        body = b'{"message": "calibration", "model": "auto"}'
        raw = build_request(
            "POST",
            "127.0.0.1",
            port,
            "/api/jobs",
            {"X-API-Key": "gw_" + "x" * 43, "Content-Type": "application/json"},
            body,
        )

        def check(response: Response) -> str | None:
            return None if response.status == 202 else f"HTTP {response.status}"

        cpu = time.process_time()
        result = asyncio.run(
            run_load(
                "127.0.0.1", port, lambda n: raw, check, concurrency=concurrency, duration=duration
            )
        )
        cpu = time.process_time() - cpu
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    rate = result.ok / result.wall_s
    per_request_us = cpu / max(result.completed, 1) * 1e6
    print(
        f"{result.ok} responses ({len(result.errors)} errors) in {result.wall_s:.1f} s at "
        f"{concurrency} concurrent: {rate:.0f} requests/s; generator CPU {per_request_us:.0f} us "
        f"per request ({100 * cpu / result.wall_s:.0f} % of one core), i.e. at most "
        f"~{1e6 / per_request_us:.0f} requests/s on one core"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Calibrate the load generator.")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    options = parser.parse_args()
    calibrate(options.concurrency, options.duration)
