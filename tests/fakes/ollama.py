"""A fake Ollama server that speaks Ollama's real HTTP wire protocol, for tests and benchmarks.

Real Ollama cannot run here, so the gateway's workers (which talk to it through
`langchain_ollama.ChatOllama` -> the `ollama` Python client -> httpx) are pointed at this
server instead. It listens on a real socket and answers like Ollama:

* ``POST /api/chat`` streams ``application/x-ndjson`` with chunked transfer encoding, one JSON
  object per line, written and flushed token by token, then a final ``"done": true`` object
  with ``done_reason`` and the timing/count metrics; with ``"stream": false`` it answers one
  JSON object. Tool calls, ``options.num_predict`` / ``options.stop``, unknown models (404) and
  empty ``messages`` (``done_reason: "load"``) behave like Ollama. Other options (``seed``,
  ``temperature``, ``top_p``, penalties...) are accepted and recorded, with no effect.
* ``POST /api/embed`` (``input``: a string or a list; ``dimensions`` truncates and
  renormalizes) and the legacy ``POST /api/embeddings`` (``prompt``) for the models in
  ``embedding_models``; a chat request to one of them is a 400, like Ollama's.
* ``GET /api/tags`` (chat, vision and embedding models), ``POST /api/show``, ``GET /api/ps``,
  ``GET /api/version``, ``GET /``.

Replies are deterministic so tests can check them: by default ``"w0 w1 ... w19"`` streamed as
the tokens ``"w0"``, ``" w1"``, ``" w2"``... Everything is adjustable at runtime (``reply``,
``reply_fn``, ``reply_tokens``, ``token_delay``, ``first_token_delay``, ``mode`` for faults),
and every ``/api/chat`` request body is kept in ``requests`` (``/api/embed`` and
``/api/embeddings`` bodies in ``embed_requests``). What the fake model answers to a chat:

* ``reply_fn(request)`` when set, verbatim, whatever the request asks for.
* Tool calls, when the request offers tools and the last message is the user's:
  a tool offered under its own name in the user's text (whole word, any case), other than the
  gateway's own ``tool_name``, is called with arguments made from its JSON-schema
  ``parameters`` (see ``schema_example``); with "twice" and two or more such names, or with
  ``parallel_tool_calls_for_all``, every named tool is called in one message
  (``client_tool_calls = False`` turns this off). Otherwise ``tool_name`` ("web_search") is
  called with ``{"query": <user text>}`` when the text matches ``tool_trigger``. Failing
  both, the first offered client tool whose name has a word the text has (whole word, any
  case; names split at ``_``, ``-`` and capitals; words of 4+ letters but "tool" and
  "function") is called, as a model picks a tool by its topic: ``get_weather`` for "What is
  the weather in Paris?".
* After a ``tool`` message: ``"Based on the tool result: <its first 50 characters>"``.
* Else ``reply``, or ``"I see N image(s)."`` when the last user message carries N images (for
  a model in ``vision_models``; other models answer images with a 400), or the numbered words.
* ``format``: ``"json"`` wraps that text as ``{"answer": text}``, or as the value of each key
  the user's text asks for by quoting them (``with 'setup' and 'punchline' keys``); a JSON
  schema is answered with an instance of it (``format_violation`` drops its required
  properties). Either way compact JSON, streamed token by token, so ``num_predict`` /
  ``stop`` still cut it.
* ``"logprobs": true`` adds Ollama's ``logprobs`` list to every content chunk (with
  ``top_logprobs`` alternatives when asked for), or to the one object when not streaming.

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
import math
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

__all__ = [
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "DEFAULT_EMBEDDING_MODELS",
    "DEFAULT_MODELS",
    "MODES",
    "FakeOllama",
    "embedding_for",
    "numbered_words",
    "schema_example",
    "tokenize",
]

OLLAMA_VERSION = "0.6.0"
DEFAULT_MODELS = ("llama3.2:3b", "qwen2.5:7b")
DEFAULT_EMBEDDING_MODELS = ("nomic-embed-text",)
DEFAULT_EMBEDDING_DIMENSIONS = 768
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
    "nomic-embed-text:latest": ("nomic-bert", "137M", "F16"),
}
_EMBEDDING_FAMILY = ("nomic-bert", "137M", "F16")  # for embedding models not listed above
_TOKEN_RE = re.compile(r"\s*\S+|\s+")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED_RE = re.compile(r'"([^"]*)"')
# 'a phrase' in single quotes: not an apostrophe (the quotes are not inside words).
_SINGLE_QUOTED_RE = re.compile(r"(?<!\w)'([^']+)'(?!\w)")
# Keys a text asks a JSON answer to have: "with 'setup' and 'punchline' keys".
_ASKED_KEYS_RE = re.compile(
    r"""((?:["'][A-Za-z_]\w*["'](?:\s*,)?(?:\s+and)?\s*)+)(?:keys|fields|properties)\b""",
    re.IGNORECASE,
)
_KEY_RE = re.compile(r"""["']([A-Za-z_]\w*)["']""")
_NAME_WORD_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_GENERIC_NAME_WORDS = frozenset({"tool", "tools", "function"})
_TWICE_RE = re.compile(r"(?i)\btwice\b")
_MAX_TOP_LOGPROBS = 20  # Ollama refuses more
_MAX_SCHEMA_DEPTH = 12  # recursive $refs stop here
_NO_IMAGES_ERROR = "this model is missing data required for image input"
_FORMAT_ERROR = 'invalid format: expected "json" or a valid JSON schema'
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


def _model_details(name: str, *, embedding: bool = False) -> dict[str, Any]:
    known = _MODEL_INFO.get(name) or _MODEL_INFO.get(_canonical_model(name))
    family, size, quant = known or (_EMBEDDING_FAMILY if embedding else (None, None, "Q4_K_M"))
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
    if details["quantization_level"] == "F16":
        return int(params * 2)
    return int(params * 0.6)  # ~4.8 bits per weight, like a Q4_K_M gguf


def _text_of(content: Any) -> str:
    """A message's text: Ollama sends a string; list content (OpenAI-style parts) is joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def _last_user_message(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The most recent message with role "user" ({} when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message
    return {}


def _image_count(message: dict[str, Any]) -> int:
    images = message.get("images")
    return len(images) if isinstance(images, list) else 0


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# ---- embeddings ---------------------------------------------------------------------------


def embedding_for(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """The fake's embedding of ``text``: ``dimensions`` floats, L2-normalized.

    Made from sha256 digests of the text alone (the model does not matter), so equal texts
    get equal vectors and tests can compute the expected one. A shorter vector is the
    renormalized prefix of a longer one, which is what ``dimensions`` asks of Ollama:
    ``embedding_for(t, 256)`` is what ``/api/embed`` answers with ``"dimensions": 256``.
    """
    raw: list[float] = []
    block = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        raw.extend(int.from_bytes(digest[i : i + 4], "big") / 2**31 - 1.0 for i in range(0, 32, 4))
        block += 1
    raw = raw[: max(0, dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _embed_inputs(value: Any) -> list[str] | None:
    """/api/embed's ``input`` as a list of texts; None when it is not a string or strings.

    Like Ollama, an empty string (or no input at all) means nothing to embed.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


# ---- JSON-schema instances (structured output and tool arguments) -----------------------


def schema_example(schema: Any, text: str = "", *, omit_required: bool = False) -> Any:
    """An instance of a JSON schema, filled in from ``text`` (the user's words).

    integer/number: the first number in ``text`` (else 1), kept within minimum/maximum;
    string: the first double-quoted phrase in ``text``, else the first single-quoted one
    (else ``"w0"``); boolean: true;
    array: ``max(1, minItems)`` items; object: every property, required ones first.
    ``const`` and ``enum`` (first value) win over ``type``; ``anyOf`` / ``oneOf`` take their
    first option; ``allOf`` is merged; local ``$ref`` (``#/$defs/...``) is followed.
    ``omit_required`` leaves out every required property (an invalid instance, on purpose).
    """
    return _SchemaExample(schema, text, omit_required).build(schema, 0)


class _SchemaExample:
    def __init__(self, root: Any, text: str, omit_required: bool) -> None:
        self.root = root
        self.omit_required = omit_required
        number = _NUMBER_RE.search(text)
        self.number = number.group(0) if number else None
        quoted = _QUOTED_RE.search(text) or _SINGLE_QUOTED_RE.search(text)
        self.phrase = quoted.group(1) if quoted else None

    def build(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
            return None
        schema = self._resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.build(options[0], depth + 1)
        if isinstance(schema.get("allOf"), list):
            return self.build(self._merge_all_of(schema, depth), depth + 1)
        kind = self._kind(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind in ("integer", "number"):
            return self._number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.phrase if self.phrase is not None else "w0"

    def _resolve(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        """Follow local ``$ref`` pointers (``#``, ``#/$defs/X``, ``#/definitions/X``...)."""
        while isinstance(schema.get("$ref"), str) and depth <= _MAX_SCHEMA_DEPTH:
            ref = schema["$ref"]
            if not ref.startswith("#"):
                return {}  # remote refs: nothing to follow
            target: Any = self.root
            for part in [p for p in ref[1:].split("/") if p]:
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                return {}
            schema = target
            depth += 1
        return schema

    def _merge_all_of(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        properties = dict(merged.get("properties") or {})
        required = list(merged.get("required") or [])
        for part in schema["allOf"]:
            part = self._resolve(part, depth) if isinstance(part, dict) else {}
            properties.update(part.get("properties") or {})
            required += [name for name in part.get("required") or [] if name not in required]
            for key, value in part.items():
                merged.setdefault(key, value)
        if properties:
            merged["properties"] = properties
        if required:
            merged["required"] = required
        return merged

    @staticmethod
    def _kind(schema: dict[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):  # ["string", "null"]: the first real type
            kind = next((k for k in kind if k != "null"), "null")
        if isinstance(kind, str):
            return kind
        if "properties" in schema:
            return "object"
        if "items" in schema:
            return "array"
        return "string"

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = [name for name in schema.get("required") or [] if name in properties]
        optional = [name for name in properties if name not in required]
        names = optional if self.omit_required else required + optional
        return {name: self.build(properties[name], depth + 1) for name in names}

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        count = max(1, schema.get("minItems") or 0)
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        items = schema.get("items")
        item_schema = items if isinstance(items, dict) else {}
        return [self.build(item_schema, depth + 1) for _ in range(count)]  # no shared objects

    def _number(self, schema: dict[str, Any], *, integer: bool) -> int | float:
        value: int | float = 1
        if self.number is not None:
            value = float(self.number) if "." in self.number else int(self.number)
        for bound, pick in (("minimum", max), ("maximum", min)):
            if isinstance(schema.get(bound), int | float):
                value = pick(value, schema[bound])
        return int(value) if integer else value


# ---- logprobs -----------------------------------------------------------------------------


def _token_logprobs(token: str, index: int, top: int) -> dict[str, Any]:
    """Ollama's logprobs entry for the ``index``-th generated token.

    The numbers are made up but deterministic: token i gets ``-0.01 * (i + 1)``; its
    ``top`` alternatives are the token itself, then "alt1", "alt2"... one nat less each.
    Like Ollama (``omitempty``), ``top_logprobs`` is absent when none were asked for.
    """
    logprob = -round(0.01 * (index + 1), 4)
    entry: dict[str, Any] = {"token": token, "logprob": logprob, "bytes": list(token.encode())}
    if top > 0:
        alternatives = [token] + [f"alt{k}" for k in range(1, top)]
        entry["top_logprobs"] = [
            {"token": alt, "logprob": round(logprob - k, 4), "bytes": list(alt.encode())}
            for k, alt in enumerate(alternatives)
        ]
    return entry


def _prompt_token_count(messages: Iterable[Any]) -> int:
    """Stand-in for Ollama's prompt_eval_count: the number of words in all messages."""
    count = 0
    for message in messages:
        if isinstance(message, dict):
            count += len(_text_of(message.get("content")).split())
    return count


def _find_by_name(models: Iterable[str], name: str) -> str | None:
    """The model among ``models`` that ``name`` refers to (``x`` means ``x:latest``)."""
    wanted = _canonical_model(name)
    return next((model for model in models if _canonical_model(model) == wanted), None)


def _tool_arguments(parameters: Any, text: str) -> dict[str, Any]:
    """A tool call's arguments: an instance of the tool's parameters schema ({} if none)."""
    arguments = schema_example(parameters, text) if isinstance(parameters, dict) else {}
    return arguments if isinstance(arguments, dict) else {}


def _name_words(name: str) -> list[str]:
    """The topic words of a tool's name: ``get_weather`` -> ``["weather"]``, ``GetTime`` ->
    ``["time"]`` (split at ``_``, ``-`` and capitals; 4+ letters; not "tool"/"function")."""
    found = (
        word.lower() for part in re.split(r"[_\-\s]+", name) for word in _NAME_WORD_RE.findall(part)
    )
    return [word for word in found if len(word) >= 4 and word not in _GENERIC_NAME_WORDS]


def _asked_keys(text: str) -> list[str]:
    """The keys a text asks a JSON answer to have, quoted before "keys" ([] if none)."""
    asked = _ASKED_KEYS_RE.search(text)
    return list(dict.fromkeys(_KEY_RE.findall(asked.group(1)))) if asked else []


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
            listed = self.fake.chat_models() + list(self.fake.embedding_models)
            self._send_json(200, {"models": [self.fake.tag_entry(m) for m in listed]})
        elif path == "/api/ps":
            loaded = self.fake.chat_models()
            self._send_json(200, {"models": [self.fake.ps_entry(m) for m in loaded]})
        else:
            self._send_text(404, "404 page not found")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/api/chat":
            self._chat()
        elif path == "/api/show":
            self._show()
        elif path == "/api/embed":
            self._embed(legacy=False)
        elif path == "/api/embeddings":
            self._embed(legacy=True)
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
        model = None
        if isinstance(name, str):
            model = self.fake.find_model(name) or self.fake.find_embedding_model(name)
        if model is None:
            self._send_json(404, {"error": f"model '{name}' not found"})
            return
        self._send_json(200, self.fake.show_entry(model))

    # ---- /api/embed and the legacy /api/embeddings ---------------------------------------

    def _embed(self, *, legacy: bool) -> None:
        fake = self.fake
        started = time.monotonic_ns()
        body = self._read_json()
        if body is None:
            return
        fake._record_embed(body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._send_json(400, {"error": "model is required"})
            return
        if legacy:
            prompt = body.get("prompt")
            texts = _embed_inputs(prompt) if prompt is None or isinstance(prompt, str) else None
        else:
            texts = _embed_inputs(body.get("input"))
        if texts is None:
            self._send_json(400, {"error": "invalid input type"})
            return
        if fake.find_embedding_model(model) is None:
            # Chat models too: this fake only embeds with its embedding models.
            self._send_json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        size = fake.embedding_dimensions
        dimensions = 0 if legacy else body.get("dimensions") or 0
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 0:
            self._send_json(400, {"error": "dimensions must be a non-negative number"})
            return
        if dimensions > size:
            self._send_json(
                400, {"error": f"dimensions {dimensions} exceeds the embedding length {size}"}
            )
            return

        mode = fake.mode
        if mode == "error":
            self._send_json(fake.error_status, {"error": fake.error_message})
            return
        if mode == "hang":
            self._stall()
            return
        vectors = [embedding_for(text, dimensions or size) for text in texts]
        if legacy:
            self._send_whole({"embedding": vectors[0] if vectors else []}, mode)
            return
        if not texts:  # Ollama answers at once, with no metrics
            self._send_whole({"model": model, "embeddings": []}, mode)
            return
        now = time.monotonic_ns()
        answer = {
            "model": model,
            "embeddings": vectors,
            "total_duration": max(1, now - started),
            "load_duration": max(1, (now - started) // 10),
            "prompt_eval_count": sum(len(text.split()) for text in texts),
        }
        self._send_whole(answer, mode)

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
            if fake.find_embedding_model(model) is not None:
                self._send_json(400, {"error": f'"{model}" does not support chat'})
            else:
                self._send_json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        refused = fake.chat_request_error(body, model)
        if refused is not None:
            self._send_json(400, {"error": refused})
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
        # One logprobs list per piece (each piece is one token); empty when not asked for.
        logprobs: list[list[dict[str, Any]]]
        if tool_calls:
            pieces: list[dict[str, Any]] = [
                {"role": "assistant", "content": "", "tool_calls": tool_calls}
            ]
            logprobs = [[]]
            eval_count = len(tokenize(json.dumps(tool_calls)))
            done_reason = "stop"
        else:
            tokens, done_reason = fake.plan_tokens(body)
            pieces = [{"role": "assistant", "content": token} for token in tokens]
            logprobs = [fake.logprobs_for(body, token, i) for i, token in enumerate(tokens)]
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
            self._answer_whole(pieces, logprobs, mode, final)
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
            chunk = {
                "model": model,
                "created_at": _now_rfc3339(),
                "message": message,
                "done": False,
            }
            if logprobs[index]:
                chunk["logprobs"] = logprobs[index]
            self._emit(chunk)
        if faulty:  # fewer pieces than fault_at: the fault happens before the final object
            self._stream_fault(mode, model)
            return
        if not pieces and not self._wait_for_token(0):
            return
        self._emit(final({"role": "assistant", "content": ""}, eval_started))
        self.wfile.write(b"0\r\n\r\n")

    def _answer_whole(
        self,
        pieces: list[dict[str, Any]],
        logprobs: list[list[dict[str, Any]]],
        mode: str,
        final: Callable[..., dict[str, Any]],
    ) -> None:
        """stream=false: wait as long as generation would take, then one JSON object."""
        eval_started = time.monotonic_ns()
        for index in range(max(1, len(pieces))):
            if not self._wait_for_token(index):
                return
            if index == 0:
                eval_started = time.monotonic_ns()
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(p.get("content", "") for p in pieces),
        }
        calls = [call for p in pieces for call in p.get("tool_calls", [])]
        if calls:
            message["tool_calls"] = calls
        answer = final(message, eval_started)
        all_logprobs = [entry for entries in logprobs for entry in entries]
        if all_logprobs:
            answer["logprobs"] = all_logprobs
        self._send_whole(answer, mode)

    def _send_whole(self, answer: dict[str, Any], mode: str) -> None:
        """A one-object answer (stream=false, embeddings), spoiled the way ``mode`` says."""
        fake = self.fake
        if mode == "hang_mid_stream":
            self._stall()
            return
        if mode == "error_mid_stream":
            self._send_json(fake.error_status, {"error": fake.error_message})
            return
        data = _dumps(answer)
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
                    self.fake.note_abandoned()
                    return  # the client closed its end (it timed out, or gave up)
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
        vision_models: Iterable[str] = (),
        embedding_models: Iterable[str] = DEFAULT_EMBEDDING_MODELS,
        embedding_dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS,
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
            "client_tool_calls": True,
            "parallel_tool_calls_for_all": False,
            "format_violation": False,
            "vision_models": set(vision_models),
            "embedding_models": list(embedding_models),
            "embedding_dimensions": embedding_dimensions,
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
        self.client_tool_calls = True  # call tools the user names (other than tool_name)
        self.parallel_tool_calls_for_all = False  # call every named tool, not just the first
        self.format_violation = False  # schema replies leave out their required properties
        self.vision_models: set[str] = set()  # chat models that take images (served too)
        self.embedding_models: list[str] = []  # served by /api/embed, refused by /api/chat
        self.embedding_dimensions = DEFAULT_EMBEDDING_DIMENSIONS  # native vector length
        self._mode = "ok"
        self._apply_defaults()

        self.requests: list[dict[str, Any]] = []  # every /api/chat body, in arrival order
        self.embed_requests: list[dict[str, Any]] = []  # every /api/embed(dings) body
        self._requests_changed = threading.Condition()
        self._flight_lock = threading.Lock()
        self.abandoned = 0  # stalled answers whose client closed the connection
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
            # Copies, so that changing a list/set at runtime never changes the default.
            setattr(self, name, value.copy() if isinstance(value, list | set) else value)
        if self._mode != "down":
            self._mode = "ok"

    def reset(self) -> None:
        """Forget recorded requests and counters; restore every setting to its default."""
        self._apply_defaults()
        with self._requests_changed:
            self.requests.clear()
            self.embed_requests.clear()
        with self._flight_lock:
            self.max_in_flight = self.in_flight
            self.abandoned = 0

    def note_abandoned(self) -> None:
        with self._flight_lock:
            self.abandoned += 1

    # ---- what the fake model answers (override in a subclass, or set attributes) -----------

    def reply_for(self, request: dict[str, Any]) -> str:
        """The text answered to a chat request (when it does not call a tool)."""
        if self.reply_fn is not None:
            return self.reply_fn(request)
        messages = request.get("messages") or []
        last = messages[-1] if messages else {}
        images = _image_count(_last_user_message(messages))
        if last.get("role") == "tool":
            content = last.get("content")
            text = f"Based on the tool result: {str(content or '')[:50]}"
        elif self.reply is not None:
            text = self.reply
        elif images:  # only vision models get this far with images (others get a 400)
            text = f"I see {images} image(s)."
        else:
            text = numbered_words(self.reply_tokens)
        return self.formatted_reply(request, text)

    def formatted_reply(self, request: dict[str, Any], text: str) -> str:
        """``text`` as the request's ``format`` wants it: as is, ``{"answer": text}``, or an
        instance of the JSON schema made from the last user message (``schema_example``)."""
        fmt = request.get("format")
        if fmt == "json":
            user = _last_user_message(request.get("messages") or [])
            keys = _asked_keys(_text_of(user.get("content"))) or ["answer"]
            return _compact_json(dict.fromkeys(keys, text))
        if isinstance(fmt, dict):
            user = _last_user_message(request.get("messages") or [])
            instance = schema_example(
                fmt, _text_of(user.get("content")), omit_required=self.format_violation
            )
            return _compact_json(instance)
        return text

    def tool_calls_for(self, request: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Ollama-shaped tool calls when the request offers a tool and the user asks for it.

        A client tool named in the user's text wins over the ``tool_trigger`` words: naming
        a tool is the more specific request (and a client tool called e.g. "search_docs"
        could not be called otherwise while ``web_search`` is offered too). A client tool
        whose topic the text has comes last.
        """
        return (
            self._client_tool_calls(request)
            or self._web_search_call(request)
            or self._topic_tool_call(request)
        )

    def _web_search_call(self, request: dict[str, Any]) -> list[dict[str, Any]] | None:
        """``tool_name`` with the user's text as its query, when the text matches the trigger."""
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

    def _client_tool_calls(self, request: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Calls to the offered tools (other than ``tool_name``) the user's last message names.

        The first one named is called, or all of them (in the order named) when the text says
        "twice" and names two or more, or when ``parallel_tool_calls_for_all`` is set.
        """
        offered = self._offered_client_tools(request)
        if offered is None:
            return None
        text, parameters = offered
        mentions = []
        for name in parameters:
            match = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE)
            if match:
                mentions.append((match.start(), name))
        named = [name for _, name in sorted(mentions)]
        if not named:
            return None
        if not (self.parallel_tool_calls_for_all or (len(named) > 1 and _TWICE_RE.search(text))):
            named = named[:1]
        return [
            {"function": {"name": name, "arguments": _tool_arguments(parameters[name], text)}}
            for name in named
        ]

    def _topic_tool_call(self, request: dict[str, Any]) -> list[dict[str, Any]] | None:
        """A call to the first offered client tool whose name has a word the user's last
        message has (``get_weather`` for "the weather in Paris"), as a model picks a tool."""
        offered = self._offered_client_tools(request)
        if offered is None:
            return None
        text, parameters = offered
        for name, schema in parameters.items():
            if any(
                re.search(rf"(?<!\w){word}(?!\w)", text, re.IGNORECASE)
                for word in _name_words(name)
            ):
                return [{"function": {"name": name, "arguments": _tool_arguments(schema, text)}}]
        return None

    def _offered_client_tools(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The user's last text and the offered client tools (name -> parameters schema, in
        the order offered); None when client tools are off or the last message is not the
        user's."""
        if not self.client_tool_calls:
            return None
        messages = request.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") != "user":
            return None
        parameters: dict[str, Any] = {}
        for tool in request.get("tools") or []:
            function = tool.get("function") if isinstance(tool, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if isinstance(name, str) and name and name != self.tool_name:
                parameters.setdefault(name, function.get("parameters"))
        return _text_of(last.get("content")), parameters

    def chat_request_error(self, request: dict[str, Any], model: str) -> str | None:
        """Why Ollama would refuse this chat request with a 400 (None: it would not)."""
        fmt = request.get("format")
        if not (fmt in (None, "", "json") or isinstance(fmt, dict)):
            return _FORMAT_ERROR
        top = request.get("top_logprobs")
        if top is not None and (
            not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= _MAX_TOP_LOGPROBS
        ):
            return f"top_logprobs must be between 0 and {_MAX_TOP_LOGPROBS}"
        messages = request.get("messages") or []
        if not self.is_vision_model(model) and any(_image_count(m) for m in messages):
            return _NO_IMAGES_ERROR
        return None

    def logprobs_for(self, request: dict[str, Any], token: str, index: int) -> list[dict[str, Any]]:
        """The ``logprobs`` list of the chunk carrying token ``index`` ([] unless asked for)."""
        if request.get("logprobs") is not True:
            return []
        return [_token_logprobs(token, index, request.get("top_logprobs") or 0)]

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

    def chat_models(self) -> list[str]:
        """The models /api/chat serves: ``models``, then any ``vision_models`` not among them."""
        served = list(self.models)
        known = {_canonical_model(model) for model in served}
        for model in sorted(self.vision_models):
            if _canonical_model(model) not in known:
                served.append(model)
                known.add(_canonical_model(model))
        return served

    def find_model(self, name: str) -> str | None:
        """The configured chat model a request's name refers to (``x`` means ``x:latest``)."""
        return _find_by_name(self.chat_models(), name)

    def find_embedding_model(self, name: str) -> str | None:
        """The configured embedding model a request's name refers to."""
        return _find_by_name(self.embedding_models, name)

    def is_vision_model(self, name: str) -> bool:
        return _find_by_name(self.vision_models, name) is not None

    def _details(self, model: str) -> dict[str, Any]:
        return _model_details(model, embedding=self.find_embedding_model(model) is not None)

    def tag_entry(self, model: str) -> dict[str, Any]:
        details = self._details(model)
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
        details = self._details(model)
        family = details["family"]
        model_info: dict[str, Any] = {
            "general.architecture": family,
            "general.parameter_count": int(_model_size_bytes(details) / 0.6),
        }
        if self.find_embedding_model(model) is not None:
            model_info[f"{family}.context_length"] = 2048
            model_info[f"{family}.embedding_length"] = self.embedding_dimensions
            capabilities = ["embedding"]
        else:
            model_info[f"{family}.context_length"] = 131072
            capabilities = ["completion", "tools"]
            if self.is_vision_model(model):
                capabilities.append("vision")
        return {
            "license": "FAKE LICENSE",
            "modelfile": f"# Modelfile generated by FakeOllama\nFROM {model}\n",
            "parameters": 'stop                           "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": details,
            "model_info": model_info,
            "capabilities": capabilities,
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

    def _record_embed(self, body: dict[str, Any]) -> None:
        with self._requests_changed:
            self.embed_requests.append(body)
            self._requests_changed.notify_all()

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


def _name_list(names: str) -> list[str]:
    return [name.strip() for name in names.split(",") if name.strip()]


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
    parser.add_argument(
        "--vision-models", default="", help="comma-separated chat models that accept images"
    )
    parser.add_argument(
        "--embedding-models",
        default=",".join(DEFAULT_EMBEDDING_MODELS),
        help="comma-separated models for /api/embed",
    )
    parser.add_argument("--embedding-dimensions", type=int, default=DEFAULT_EMBEDDING_DIMENSIONS)
    parser.add_argument("--mode", default="ok", choices=[m for m in MODES if m != "down"])
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    fake = FakeOllama(
        host=args.host,
        port=args.port,
        models=_name_list(args.models),
        vision_models=_name_list(args.vision_models),
        embedding_models=_name_list(args.embedding_models),
        embedding_dimensions=args.embedding_dimensions,
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
