"""A fake Ollama server that speaks Ollama's real HTTP wire protocol, for tests and benchmarks.

Real Ollama cannot run here, so the gateway's workers (which talk to it through
`langchain_ollama.ChatOllama` -> the `ollama` Python client -> httpx) are pointed at this
server instead. It listens on a real socket and answers like Ollama 0.6:

* ``POST /api/chat`` streams ``application/x-ndjson`` with chunked transfer encoding, one JSON
  object per line, written and flushed token by token, then a final ``"done": true`` object
  with ``done_reason`` and the timing/count metrics; with ``"stream": false`` it answers one
  JSON object. Tool calls, ``options.num_predict`` / ``options.stop``, unknown models (404) and
  empty ``messages`` (``done_reason: "load"``) behave like Ollama.
* ``GET /api/tags``, ``POST /api/show``, ``GET /api/ps``, ``GET /api/version``, ``GET /``.

Replies are deterministic so tests can check them: by default ``"w0 w1 ... w19"`` streamed as
the tokens ``"w0"``, ``" w1"``, ``" w2"``... Everything is adjustable at runtime (``reply``,
``reply_fn``, ``reply_tokens``, ``token_delay``, ``first_token_delay``, ``mode`` for faults),
and every ``/api/chat`` request body is kept in ``requests``.

Usage::

    with FakeOllama(token_delay=0.01) as fake:
        llm = ChatOllama(model="llama3.2:3b", base_url=fake.url)
        assert llm.invoke("hi").content == "w0 w1 ... w19"

Or as its own process (prints ``FakeOllama listening on http://HOST:PORT`` when ready, runs
until SIGTERM/SIGINT)::

    python -m tests.fakes.ollama --host 127.0.0.1 --port 11434 --token-delay 0.05
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DEFAULT_MODELS", "MODES", "FakeOllama", "numbered_words", "tokenize"]

OLLAMA_VERSION = "0.6.0"
DEFAULT_MODELS = ("llama3.2:3b", "qwen2.5:7b")
DEFAULT_TOOL_TRIGGER = r"(?i)search|검색"
DEFAULT_ERROR_MESSAGE = "llama runner process has terminated: exit status 2"
MODES = (
    "ok",  # normal answers
    "error",  # HTTP error_status {"error": error_message} before anything is streamed
    "error_mid_stream",  # fail_after tokens, then an {"error": ...} line (what Ollama does)
    "hang",  # read the request, never answer (until the client leaves or stop())
    "hang_mid_stream",  # hang_after tokens, then stall without closing
    "malformed",  # fail_after tokens, then a line that is not JSON
    "disconnect_mid_stream",  # fail_after tokens, then the socket is closed mid-body
    "down",  # setting it calls stop(); start() brings the server back on the same port
)

# Known model metadata (family, parameter size, quantization); others are derived from the name.
_MODEL_INFO = {
    "llama3.2:3b": ("llama", "3.2B", "Q4_K_M"),
    "llama3.2:1b": ("llama", "1.2B", "Q8_0"),
    "llama3.1:8b": ("llama", "8.0B", "Q4_K_M"),
    "qwen2.5:7b": ("qwen2", "7.6B", "Q4_K_M"),
    "qwen2.5:0.5b": ("qwen2", "494.03M", "Q4_K_M"),
}
_TOKEN_RE = re.compile(r"\s*\S+|\s+")
_TRANSPORT_ERRORS = (ConnectionError, TimeoutError, OSError)


def tokenize(text: str) -> list[str]:
    """Split text into word-ish tokens that keep their leading whitespace.

    ``"".join(tokenize(t)) == t`` always holds: ``"w0 w1"`` -> ``["w0", " w1"]``.
    """
    return _TOKEN_RE.findall(text)


def numbered_words(n: int) -> str:
    """``"w0 w1 ... w{n-1}"``: the default, checkable reply."""
    return " ".join(f"w{i}" for i in range(max(0, n)))


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _canonical_model(name: str) -> str:
    """Ollama's default tag: ``llama3.2`` means ``llama3.2:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _model_details(name: str) -> dict[str, Any]:
    family, size, quant = _MODEL_INFO.get(name, (None, None, "Q4_K_M"))
    if family is None:
        base, _, tag = name.partition(":")
        match = re.match(r"[a-zA-Z]+", base.rsplit("/", 1)[-1])
        family = match.group(0).lower() if match else "llama"
        size_match = re.search(r"(\d+(?:\.\d+)?)([bBmM])", tag)
        size = f"{size_match.group(1)}{size_match.group(2).upper()}" if size_match else "7B"
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": size,
        "quantization_level": quant,
    }


def _model_size_bytes(details: dict[str, Any]) -> int:
    match = re.match(r"(\d+(?:\.\d+)?)([BM])", details["parameter_size"])
    if not match:
        return 4_000_000_000
    params = float(match.group(1)) * (1e9 if match.group(2) == "B" else 1e6)
    return int(params * 0.6)  # ~4.8 bits per weight, like a Q4_K_M gguf


def _prompt_token_count(messages: Iterable[Any]) -> int:
    """Stand-in for Ollama's prompt_eval_count: the number of words in all messages."""
    count = 0
    for message in messages:
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                count += len(content.split())
    return count


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections so stop() can end them promptly."""

    daemon_threads = True
    block_on_close = False  # stop() joins handler threads itself, with a deadline
    allow_reuse_address = True  # restart on the same port right after stop()
    request_queue_size = 1024  # many clients connecting at once must not be refused

    def __init__(self, address: tuple[str, int], fake: FakeOllama) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.fake = fake
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the FQDN of the host; not needed, and it can be slow.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.stopping.is_set() or isinstance(sys.exc_info()[1], _TRANSPORT_ERRORS):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked streaming, like Go's net/http
    server: _Server
    _headers_sent = False

    # ---- connection bookkeeping -------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections.add(self.connection)
            self.server.threads.add(threading.current_thread())

    def finish(self) -> None:
        try:
            super().finish()
        except _TRANSPORT_ERRORS:
            pass
        finally:
            with self.server.lock:
                self.server.connections.discard(self.connection)
                self.server.threads.discard(threading.current_thread())

    def handle_one_request(self) -> None:
        if self.server.stopping.is_set():
            self.close_connection = True
            return
        try:
            super().handle_one_request()
        except _TRANSPORT_ERRORS:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def version_string(self) -> str:
        return "FakeOllama"

    @property
    def fake(self) -> FakeOllama:
        return self.server.fake

    # ---- routing ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send_text(200, "Ollama is running")
        elif path == "/api/version":
            self._send_json(200, {"version": OLLAMA_VERSION})
        elif path == "/api/tags":
            self._send_json(200, {"models": [self.fake.tag_entry(m) for m in self.fake.models]})
        elif path == "/api/ps":
            self._send_json(200, {"models": [self.fake.ps_entry(m) for m in self.fake.models]})
        else:
            self._send_text(404, "404 page not found")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/api/chat":
            self._chat()
        elif path == "/api/show":
            self._show()
        else:
            self._read_body()
            self._send_text(404, "404 page not found")

    # ---- plain responses --------------------------------------------------------------------

    def _send_bytes(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send_bytes(status, _dumps(obj), "application/json; charset=utf-8")

    def _send_text(self, status: int, text: str) -> None:
        self._send_bytes(status, text.encode(), "text/plain; charset=utf-8")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_json(self) -> dict[str, Any] | None:
        """The request's JSON object, or None after answering 400 like Ollama does."""
        raw = self._read_body()
        if not raw.strip():
            self._send_json(400, {"error": "missing request body"})
            return None
        try:
            body = json.loads(raw)
        except ValueError as exc:
            self._send_json(400, {"error": f"invalid character in request body: {exc}"})
            return None
        if not isinstance(body, dict):
            self._send_json(400, {"error": "json: cannot unmarshal into Go value of type api"})
            return None
        return body

    # ---- /api/show --------------------------------------------------------------------------

    def _show(self) -> None:
        body = self._read_json()
        if body is None:
            return
        name = body.get("model") or body.get("name") or ""
        model = self.fake.find_model(name) if isinstance(name, str) else None
        if model is None:
            self._send_json(404, {"error": f"model '{name}' not found"})
            return
        self._send_json(200, self.fake.show_entry(model))

    # ---- /api/chat --------------------------------------------------------------------------

    def _chat(self) -> None:
        fake = self.fake
        started = time.monotonic_ns()
        body = self._read_json()
        if body is None:
            return
        fake._record(body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._send_json(400, {"error": "model is required"})
            return
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            self._send_json(400, {"error": "json: cannot unmarshal messages into []api.Message"})
            return
        if fake.find_model(model) is None:
            self._send_json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return

        mode = fake.mode
        if mode == "error":
            self._send_json(fake.error_status, {"error": fake.error_message})
            return
        if mode == "hang":
            self._stall()
            return
        if not messages:  # Ollama loads the model and answers at once
            self._send_json(
                200,
                {
                    "model": model,
                    "created_at": _now_rfc3339(),
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": "load",
                    "done": True,
                },
            )
            return

        fake._enter()
        try:
            self._generate(body, model, mode, started)
        finally:
            fake._leave()

    def _generate(self, body: dict[str, Any], model: str, mode: str, started: int) -> None:
        fake = self.fake
        stream = body.get("stream") is not False  # Ollama streams unless told not to
        tool_calls = fake.tool_calls_for(body)
        if tool_calls:
            pieces: list[dict[str, Any]] = [
                {"role": "assistant", "content": "", "tool_calls": tool_calls}
            ]
            eval_count = len(tokenize(json.dumps(tool_calls)))
            done_reason = "stop"
        else:
            tokens, done_reason = fake.plan_tokens(body)
            pieces = [{"role": "assistant", "content": token} for token in tokens]
            eval_count = len(tokens)

        generation_started = time.monotonic_ns()
        load = max(1, generation_started - started)

        def final(message: dict[str, Any], eval_started: int) -> dict[str, Any]:
            now = time.monotonic_ns()
            return {
                "model": model,
                "created_at": _now_rfc3339(),
                "message": message,
                "done_reason": done_reason,
                "done": True,
                "total_duration": max(1, now - started),
                "load_duration": load,
                "prompt_eval_count": _prompt_token_count(body.get("messages") or []),
                "prompt_eval_duration": max(1, eval_started - generation_started),
                "eval_count": eval_count,
                "eval_duration": max(1, now - eval_started),
            }

        if not stream:
            self._answer_whole(pieces, mode, final)
            return

        fault_at = {"hang_mid_stream": fake.hang_after}.get(mode, fake.fail_after)
        faulty = mode in (
            "hang_mid_stream",
            "malformed",
            "disconnect_mid_stream",
            "error_mid_stream",
        )
        eval_started = time.monotonic_ns()
        self._headers_sent = False
        for index, message in enumerate(pieces):
            if faulty and index >= fault_at:
                self._stream_fault(mode, model)
                return
            if not self._wait_for_token(index):
                return
            if index == 0:
                eval_started = time.monotonic_ns()
            self._emit(
                {"model": model, "created_at": _now_rfc3339(), "message": message, "done": False}
            )
        if faulty:  # fewer pieces than fault_at: the fault happens before the final object
            self._stream_fault(mode, model)
            return
        if not pieces and not self._wait_for_token(0):
            return
        self._emit(final({"role": "assistant", "content": ""}, eval_started))
        self.wfile.write(b"0\r\n\r\n")

    def _answer_whole(
        self, pieces: list[dict[str, Any]], mode: str, final: Callable[..., dict[str, Any]]
    ) -> None:
        """stream=false: wait as long as generation would take, then one JSON object."""
        fake = self.fake
        eval_started = time.monotonic_ns()
        for index in range(max(1, len(pieces))):
            if not self._wait_for_token(index):
                return
            if index == 0:
                eval_started = time.monotonic_ns()
        if mode == "hang_mid_stream":
            self._stall()
            return
        if mode == "error_mid_stream":
            self._send_json(fake.error_status, {"error": fake.error_message})
            return
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(p.get("content", "") for p in pieces),
        }
        calls = [call for p in pieces for call in p.get("tool_calls", [])]
        if calls:
            message["tool_calls"] = calls
        data = _dumps(final(message, eval_started))
        if mode == "malformed":
            self._send_bytes(200, data[: len(data) // 2] + b"\n", "application/json; charset=utf-8")
        elif mode == "disconnect_mid_stream":
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self._drop_connection()
        else:
            self._send_bytes(200, data, "application/json; charset=utf-8")

    # ---- streaming helpers ------------------------------------------------------------------

    def _wait_for_token(self, index: int) -> bool:
        """Sleep like a model producing token ``index``; False when the server is stopping."""
        delay = self.fake.token_delay + (self.fake.first_token_delay if index == 0 else 0.0)
        stopping = self.server.stopping.wait(delay) if delay > 0 else self.server.stopping.is_set()
        if stopping:
            self.close_connection = True
        return not stopping

    def _emit(self, obj: dict[str, Any]) -> None:
        """One NDJSON line as one HTTP chunk, written straight to the socket."""
        self._emit_raw(_dumps(obj) + b"\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _stream_fault(self, mode: str, model: str) -> None:
        fake = self.fake
        if mode == "hang_mid_stream":
            self._stall()
        elif mode == "error_mid_stream":
            self._emit({"error": fake.error_message})
            self.wfile.write(b"0\r\n\r\n")
        elif mode == "malformed":
            partial = _dumps({"model": model, "created_at": _now_rfc3339()})[:-1]
            self._emit_raw(partial + b',"message":{"role":"assis\n')
            self.wfile.write(b"0\r\n\r\n")
        elif mode == "disconnect_mid_stream":
            if not self._headers_sent:
                self._emit_raw(b"")
            self._drop_connection()

    def _emit_raw(self, data: bytes) -> None:
        if not self._headers_sent:
            # Like Ollama (Go net/http), the headers leave with the first object.
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._headers_sent = True
        if data:
            self._write_chunk(data)

    def _drop_connection(self) -> None:
        """Close the socket in the middle of the body (no terminating chunk)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _stall(self) -> None:
        """Say nothing more until the client goes away or the server stops."""
        self.close_connection = True
        sock = self.connection
        while not self.server.stopping.is_set():
            try:
                readable, _, _ = select.select([sock], [], [], 0.1)
                if readable and not sock.recv(1, socket.MSG_PEEK):
                    return  # the client closed its end (e.g. it timed out)
            except (OSError, ValueError):
                return
            if readable:
                self.server.stopping.wait(0.1)


class FakeOllama:
    """An Ollama look-alike HTTP server on a real socket. See the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Iterable[str] = DEFAULT_MODELS,
        token_delay: float = 0.0,
        *,
        first_token_delay: float = 0.0,
        reply_tokens: int = 20,
        reply: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.verbose = verbose
        self._defaults: dict[str, Any] = {
            "models": list(models),
            "token_delay": token_delay,
            "first_token_delay": first_token_delay,
            "reply_tokens": reply_tokens,
            "reply": reply,
            "reply_fn": None,
            "tool_trigger": DEFAULT_TOOL_TRIGGER,
            "tool_name": "web_search",
            "hang_after": 3,
            "fail_after": 2,
            "error_message": DEFAULT_ERROR_MESSAGE,
            "error_status": 500,
        }
        # Settable at runtime (all read afresh by every request):
        self.models: list[str] = []
        self.token_delay = 0.0  # seconds per token (waited before each token)
        self.first_token_delay = 0.0  # extra seconds before the first token
        self.reply_tokens = 20  # default reply: "w0 ... w{reply_tokens-1}"
        self.reply: str | None = None  # fixed reply text instead
        self.reply_fn: Callable[[dict[str, Any]], str] | None = None  # or computed per request
        self.tool_trigger: str | re.Pattern[str] | None = None  # None: never call tools
        self.tool_name = "web_search"
        self.hang_after = 3  # tokens sent before "hang_mid_stream" stalls
        self.fail_after = 2  # tokens sent before "malformed"/"disconnect"/"error_mid_stream"
        self.error_message = DEFAULT_ERROR_MESSAGE
        self.error_status = 500
        self._mode = "ok"
        self._apply_defaults()

        self.requests: list[dict[str, Any]] = []  # every /api/chat body, in arrival order
        self._requests_changed = threading.Condition()
        self._flight_lock = threading.Lock()
        self.in_flight = 0  # /api/chat generations running now
        self.max_in_flight = 0  # the most that ever ran at once (since reset())
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeOllama:
        """Listen and serve in a background thread (again on the same port after stop())."""
        with self._lifecycle:
            if self._server is not None:
                return self
            server = _Server((self.host, self.port), self)
            self.port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-ollama-{self.port}",
                daemon=True,
            )
            self._server, self._serve_thread = server, thread
            if self._mode == "down":
                self._mode = "ok"
            thread.start()
            return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening and end every connection, hanging ones included (within ~timeout)."""
        with self._lifecycle:
            server, thread = self._server, self._serve_thread
            self._server = self._serve_thread = None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        with server.lock:
            connections = list(server.connections)
            threads = list(server.threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for handler_thread in threads:
            if handler_thread is not threading.current_thread():
                handler_thread.join(max(0.0, deadline - time.monotonic()))
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # ---- runtime settings -------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; choose from {', '.join(MODES)}")
        self._mode = value
        if value == "down":
            self.stop()

    def _apply_defaults(self) -> None:
        for name, value in self._defaults.items():
            setattr(self, name, list(value) if name == "models" else value)
        if self._mode != "down":
            self._mode = "ok"

    def reset(self) -> None:
        """Forget recorded requests and counters; restore every setting to its default."""
        self._apply_defaults()
        with self._requests_changed:
            self.requests.clear()
        with self._flight_lock:
            self.max_in_flight = self.in_flight

    # ---- what the fake model answers (override in a subclass, or set attributes) -----------

    def reply_for(self, request: dict[str, Any]) -> str:
        """The text answered to a chat request (when it does not call a tool)."""
        if self.reply_fn is not None:
            return self.reply_fn(request)
        messages = request.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            content = last.get("content")
            return f"Based on the tool result: {str(content or '')[:50]}"
        if self.reply is not None:
            return self.reply
        return numbered_words(self.reply_tokens)

    def tool_calls_for(self, request: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Ollama-shaped tool calls when the request offers the tool and the user asks to."""
        if self.tool_trigger is None:
            return None
        offered = {
            (tool.get("function") or {}).get("name")
            for tool in request.get("tools") or []
            if isinstance(tool, dict)
        }
        if self.tool_name not in offered:
            return None
        messages = request.get("messages") or []
        last = messages[-1] if messages else {}
        text = last.get("content")
        if last.get("role") != "user" or not isinstance(text, str):
            return None
        if not re.search(self.tool_trigger, text):
            return None
        return [{"function": {"name": self.tool_name, "arguments": {"query": text}}}]

    def plan_tokens(self, request: dict[str, Any]) -> tuple[list[str], str]:
        """The tokens to send and the done_reason, after options.stop and options.num_predict."""
        text = self.reply_for(request)
        options = request.get("options") or {}
        done_reason = "stop"
        stops = options.get("stop") or []
        if isinstance(stops, str):
            stops = [stops]
        cuts = [text.find(s) for s in stops if isinstance(s, str) and s and s in text]
        if cuts:
            text = text[: min(cuts)]
        tokens = tokenize(text)
        num_predict = options.get("num_predict")
        if isinstance(num_predict, int | float) and 0 < num_predict < len(tokens):
            tokens = tokens[: int(num_predict)]
            done_reason = "length"
        return tokens, done_reason

    # ---- models -----------------------------------------------------------------------------

    def find_model(self, name: str) -> str | None:
        """The configured model a request's name refers to (``x`` means ``x:latest``)."""
        wanted = _canonical_model(name)
        for model in self.models:
            if _canonical_model(model) == wanted:
                return model
        return None

    def tag_entry(self, model: str) -> dict[str, Any]:
        details = _model_details(model)
        return {
            "name": model,
            "model": model,
            "modified_at": "2025-01-15T10:20:30.123456789Z",
            "size": _model_size_bytes(details),
            "digest": hashlib.sha256(model.encode()).hexdigest(),
            "details": details,
        }

    def ps_entry(self, model: str) -> dict[str, Any]:
        entry = self.tag_entry(model)
        expires = datetime.now(UTC) + timedelta(minutes=5)
        entry.pop("modified_at")
        entry["expires_at"] = expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        entry["size_vram"] = entry["size"]
        return entry

    def show_entry(self, model: str) -> dict[str, Any]:
        details = _model_details(model)
        family = details["family"]
        return {
            "license": "FAKE LICENSE",
            "modelfile": f"# Modelfile generated by FakeOllama\nFROM {model}\n",
            "parameters": 'stop                           "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": details,
            "model_info": {
                "general.architecture": family,
                "general.parameter_count": int(_model_size_bytes(details) / 0.6),
                f"{family}.context_length": 131072,
            },
            "capabilities": ["completion", "tools"],
            "modified_at": "2025-01-15T10:20:30.123456789Z",
        }

    # ---- request log ------------------------------------------------------------------------

    def _record(self, body: dict[str, Any]) -> None:
        with self._requests_changed:
            self.requests.append(body)
            self._requests_changed.notify_all()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` chat requests were received (False on timeout)."""
        with self._requests_changed:
            return self._requests_changed.wait_for(lambda: len(self.requests) >= count, timeout)

    @property
    def last_request(self) -> dict[str, Any] | None:
        with self._requests_changed:
            return self.requests[-1] if self.requests else None

    def _enter(self) -> None:
        with self._flight_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._flight_lock:
            self.in_flight -= 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.ollama",
        description="Fake Ollama server speaking Ollama's HTTP protocol (for tests/benchmarks).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434, help="0 picks a free port")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds per token")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--reply-tokens", type=int, default=20)
    parser.add_argument("--reply", default=None, help="fixed reply text")
    parser.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help="comma-separated model names"
    )
    parser.add_argument("--mode", default="ok", choices=[m for m in MODES if m != "down"])
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    fake = FakeOllama(
        host=args.host,
        port=args.port,
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        reply_tokens=args.reply_tokens,
        reply=args.reply,
        verbose=args.verbose,
    )
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fake.start()
    fake.mode = args.mode
    print(f"FakeOllama listening on {fake.url}", flush=True)
    try:
        while not stop_requested.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
