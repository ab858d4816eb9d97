"""Side by side: what LiteLLM's proxy and this gateway add to a streamed chat, and at what CPU.

Starts, on 127.0.0.1, the fake Ollama server (tests/fakes/ollama.py in its own process: 20
reply tokens, the first after 50 + 20 ms, then one per 20 ms), LiteLLM's proxy
(bench/peers/.venv-litellm, 2 workers, no database: see peers_litellm.py) and this gateway's
stack (a fresh database `llm_gateway_bench_peers`, Redis db 13 under `gwbench-peers:`,
gunicorn with config/gunicorn.conf.py's 2 gevent workers, one Celery worker for the light
queue; response cache, jobs-in-flight cap and per-user rate limit off, so that every request
is a generation). Then one closed-loop load generator (bench/loadgen.py) drives, at each
concurrency, the same streamed chat through each target:

  direct          POST /api/chat to the fake (NDJSON): the baseline
  litellm         LiteLLM's POST /v1/chat/completions, stream true, model "light"
  gateway-v1      this gateway's POST /v1/chat/completions, the same body (API key as Bearer)
  gateway-stream  this gateway's POST /api/chat/stream (model "light", tools false)

and reports per target and concurrency the TTFT and inter-token delay added to direct's (same
percentile, same concurrency, same repetition), requests/s, errors (a reply that is not the
fake's whole text is one) and the CPU per request of each process group; the medians over the
repetitions, as a markdown table for docs/benchmarks.md. Everything it started is stopped, and
the database and keys removed, at the end, also on errors and Ctrl-C.

Run: .venv/bin/python bench/peers.py [--concurrency 1,20,50] [--requests 50,200,500] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loadgen import LoadResult, Response, build_request, run_load
from peers_litellm import add_litellm_arguments, litellm_binary, litellm_version, start_litellm
from stack import (
    MODEL,
    ROOT,
    CpuWindow,
    Stack,
    StackError,
    Storage,
    add_run_arguments,
    check_overrides,
    cpu_per_request,
    create_api_key,
    logger,
    median_of,
    parse_overrides,
    run_repetitions,
    summary,
)

if str(ROOT) not in sys.path:  # the fake model server lives in the tests
    sys.path.insert(1, str(ROOT))
from tests.fakes.ollama import numbered_words

STORAGE = Storage(db_name="llm_gateway_bench_peers", redis_db=13, prefix="gwbench-peers:")
FIRST_TOKEN_DELAY, TOKEN_DELAY, REPLY_TOKENS = 0.05, 0.02, 20
REPLY = numbered_words(REPLY_TOKENS)  # what every streamed answer must be: "w0 w1 ... w19"
PROMPT = "Say hello."
TARGETS = ("direct", "litellm", "gateway-v1", "gateway-stream")
# Each target's own server processes (the fake and the load generator serve every target).
SERVERS = {
    "direct": (),
    "litellm": ("litellm",),
    "gateway-v1": ("gunicorn", "worker", "postgres", "redis"),
    "gateway-stream": ("gunicorn", "worker", "postgres", "redis"),
}
# The CPU columns: (title, the process groups summed in it).
CPU_COLUMNS = (
    ("fake", ("fake-ollama",)),
    ("LiteLLM", ("litellm",)),
    ("gunicorn", ("gunicorn",)),
    ("Celery worker", ("worker",)),
    ("PostgreSQL+Redis", ("postgres", "redis")),
    ("load generator", ("client",)),
)
REQUEST_TIMEOUT = 60.0  # seconds for one whole request, stream included
# Before each run: the previous run's last jobs are finished and acknowledged by the worker
# after their streams ended; that CPU must not count against the next target.
SETTLE_S = 0.5
MAX_ERRORS = 50  # a cell stops early after this many (a broken target)

log = logger("peers")


class Wrong(ValueError):
    """A stream that says it failed, or does not end as it should."""


@dataclass
class Target:
    """One way to the model: where to send the request, and how its stream reads."""

    name: str
    raw: bytes  # the whole HTTP request, the same bytes every time
    host: str
    port: int
    stream: str  # "ndjson" (Ollama), "openai" (chat.completion.chunk frames), "events" (jobs)


def target(name: str, base: str, path: str, body: dict, stream: str, key: str = "") -> Target:
    """A target that POSTs `body` as JSON to `base` + `path` (with `key` as a Bearer token)."""
    url = urlsplit(base)
    host, port = url.hostname or "", url.port or 80
    headers = {"Content-Type": "application/json", "User-Agent": "bench-peers"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    raw = build_request("POST", host, port, path, headers, json.dumps(body).encode())
    return Target(name, raw, host, port, stream)


def read_stream(pieces: list[tuple[float, bytes]], kind: str) -> tuple[list[float], str]:
    """(arrival time of each token, the whole text) of a streamed answer; Wrong if it failed
    or did not end. A chunk normally holds one line or event; a line cut across chunks is put
    back together."""
    times: list[float] = []
    parts: list[str] = []
    buffer, event, ended = b"", b"", False
    for at, data in pieces:
        *lines, buffer = (buffer + data).split(b"\n")
        for line in lines:
            text = None
            if kind == "ndjson":
                if not line.strip():
                    continue
                chunk = json.loads(line)
                if "error" in chunk:
                    raise Wrong(f"error line: {chunk['error']}")
                ended = ended or bool(chunk.get("done"))
                text = (chunk.get("message") or {}).get("content")
            elif line.startswith(b"event:"):
                event = line[6:].strip()
            elif not line.strip():
                event = b""  # an SSE event ends at a blank line
            elif not line.startswith(b"data:"):
                continue  # ids, comments (heartbeats), retry
            elif kind == "openai":
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    ended = True
                    continue
                frame = json.loads(payload)
                if "error" in frame:
                    raise Wrong(f"error frame: {frame['error']}")
                choices = frame.get("choices") or [{}]
                text = (choices[0].get("delta") or {}).get("content")
            elif event == b"token":
                text = json.loads(line[5:])["text"]
            elif event == b"done":
                ended = True
            elif event in (b"error", b"cancelled", b"reset"):
                raise Wrong(f"{event.decode()} event: {line[5:200].decode(errors='replace')}")
            if text:
                times.append(at)
                parts.append(text)
    if not ended:
        raise Wrong(f"the stream did not end ({len(times)} tokens)")
    return times, "".join(parts)


@dataclass
class Samples:
    """What the answers of one run showed: TTFT and the gaps between tokens, in ms."""

    ttft_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)

    def check(self, kind: str) -> Callable[[Response], str | None]:
        """loadgen's check: None for the fake's whole reply, else what is wrong."""

        def check(response: Response) -> str | None:
            if response.status != 200:
                return f"HTTP {response.status}: {response.body[:120].decode(errors='replace')}"
            try:
                times, text = read_stream(response.pieces, kind)
            except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                return f"{exc.__class__.__name__}: {str(exc)[:120]}"
            if text != REPLY:
                return f"wrong answer: {text[:60]!r}"
            self.ttft_ms.append((times[0] - response.started) * 1000)
            self.gaps_ms.extend((b - a) * 1000 for a, b in itertools.pairwise(times))
            return None

        return check


async def drive(chosen: Target, concurrency: int, requests: int, samples: Samples) -> LoadResult:
    """`requests` streamed chats to `chosen`, `concurrency` at a time; the answers' timings
    go to `samples`."""
    return await run_load(
        chosen.host,
        chosen.port,
        lambda _n: chosen.raw,
        samples.check(chosen.stream),
        concurrency=concurrency,
        requests=requests,
        timeout=REQUEST_TIMEOUT,
        max_errors=MAX_ERRORS,
    )


# --- the stack ------------------------------------------------------------------------------


@dataclass
class State:
    """What the repetitions need from the set-up: the targets, and what LiteLLM is."""

    targets: list[Target]
    litellm: str  # "LiteLLM <version> ..." or "LiteLLM <why it did not run>"
    litellm_missing: str = ""  # why it did not run, for its rows; "" when it ran


def start_stack(stack: Stack, args: argparse.Namespace) -> State:
    """Fake model, LiteLLM (when installed), database, API and worker; the targets."""
    # Every request is a generation by one user at full concurrency: no answer from the
    # cache, no per-user caps (the defaults would answer 429 to most of the load).
    env = {
        "CACHE_TTL_SECONDS": "0",
        "MAX_JOBS_IN_FLIGHT": "0",
        "RATE_LIMIT_USER_PER_MINUTE": "1000000",
        "WEB_CONCURRENCY": "2",
        **parse_overrides(args.set),
    }
    stack.prepare_storage(env)
    fake_url = stack.start_fake_ollama(
        [
            *("--first-token-delay", str(FIRST_TOKEN_DELAY), "--token-delay", str(TOKEN_DELAY)),
            *("--reply-tokens", str(REPLY_TOKENS)),
        ]
    )
    log(f"fake Ollama at {fake_url}")
    env["OLLAMA_URL"] = fake_url
    base = stack.start_gunicorn(env)
    stack.start_worker(args.worker_threads, env)
    wanted = set(args.only)
    binary, missing = litellm_binary(args, log) if "litellm" in wanted else (None, "not run")
    about, litellm = f"LiteLLM {missing}", None
    if binary is not None:
        log("starting LiteLLM's proxy (2 workers)")
        litellm = start_litellm(stack, fake_url, binary, workers=2)
        about = f"LiteLLM {litellm_version(binary)} (2 workers, no database)"
        log(f"LiteLLM at {litellm[0]}")
    stack.wait_for_health(base, 60)
    log(f"gunicorn healthy at {base}")
    key = create_api_key(base, "peers bench")
    stack.watch_services()
    chat = {"model": "light", "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    targets = [target("direct", fake_url, "/api/chat", {**chat, "model": MODEL}, "ndjson")]
    if litellm:
        base_url, master_key = litellm
        v1 = "/v1/chat/completions"
        targets.append(target("litellm", base_url, v1, chat, "openai", master_key))
    if "gateway-v1" in wanted:
        targets.append(target("gateway-v1", base, "/v1/chat/completions", chat, "openai", key))
    if "gateway-stream" in wanted:
        job = {"message": PROMPT, "model": "light", "tools": False}
        targets.append(target("gateway-stream", base, "/api/chat/stream", job, "events", key))
    return State(targets, about, missing)


async def warm_up(targets: list[Target], requests: int, concurrency: int) -> None:
    """One answer from each target (within 90 s: the worker consumes, the proxy reaches the
    model), then `requests` more at `concurrency`; none of them counted."""
    for chosen in targets:
        deadline = time.monotonic() + 90
        while (result := await drive(chosen, 1, 1, Samples())).errors:
            if time.monotonic() > deadline:
                raise StackError(f"{chosen.name}: no answer within 90 s: {result.errors[0]}")
            await asyncio.sleep(0.5)
        if requests:
            result = await drive(chosen, concurrency, requests, Samples())
            if result.errors:
                raise StackError(f"{chosen.name}: warm-up failed: {result.errors[:3]}")


# --- one repetition -------------------------------------------------------------------------


def measure(stack: Stack, state: State, args: argparse.Namespace) -> dict[str, Any]:
    """Every target at every concurrency: {concurrency: {target: figures}}."""
    run: dict[str, Any] = {}
    for concurrency, requests in zip(args.concurrency, args.requests, strict=True):
        cells: dict[str, Any] = {}
        for chosen in state.targets:
            samples = Samples()
            time.sleep(SETTLE_S)
            window = CpuWindow(stack)
            window.start()
            result = asyncio.run(drive(chosen, concurrency, requests, samples))
            cpu = window.stop()
            stack.check_alive()
            stack.requests_failed |= bool(result.errors)
            per_request = cpu_per_request(cpu, result.wall_s, result.completed)
            cell = {
                "ttft_ms": summary(samples.ttft_ms),
                "inter_token_ms": summary(samples.gaps_ms),
                "requests_per_s": result.ok / result.wall_s,
                "ok": result.ok,
                "errors": len(result.errors),
                "error_examples": Counter(result.errors).most_common(3),
                "wall_s": result.wall_s,
                "cpu": cpu,
                "cpu_ms_per_request": per_request,
                "server_cpu_ms_per_request": sum(per_request[g] for g in SERVERS[chosen.name]),
            }
            direct = cells.get("direct")
            if direct:  # measured first, at the same concurrency, in the same repetition
                for q in ("p50", "p99"):
                    cell[f"added_ttft_{q}_ms"] = cell["ttft_ms"][q] - direct["ttft_ms"][q]
                    cell[f"added_inter_token_{q}_ms"] = (
                        cell["inter_token_ms"][q] - direct["inter_token_ms"][q]
                    )
            cells[chosen.name] = cell
            log(
                f"{chosen.name} at {concurrency}: {result.ok} ok, {len(result.errors)} failed "
                f"in {result.wall_s:.1f} s; TTFT p50 {cell['ttft_ms']['p50']:.1f} ms, "
                f"p99 {cell['ttft_ms']['p99']:.1f} ms"
            )
        run[str(concurrency)] = cells
    return run


# --- report ---------------------------------------------------------------------------------


def git_head() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "(unknown commit)"


def markdown(
    final: dict[str, Any],
    errors: dict[tuple[str, str], int],
    state: State,
    args: argparse.Namespace,
) -> str:
    """The medians (and the errors of all repetitions) as a markdown table, with what was run,
    for docs/benchmarks.md."""
    requests = ", ".join(
        f"{n} at {c}" for c, n in zip(args.concurrency, args.requests, strict=True)
    )
    lines = [
        f"`bench/peers.py`, {time.strftime('%Y-%m-%d')} at `{git_head()}`: fake "
        f"Ollama {REPLY_TOKENS} tokens (first after {FIRST_TOKEN_DELAY * 1000:g} + "
        f"{TOKEN_DELAY * 1000:g} ms, then one per {TOKEN_DELAY * 1000:g} ms); {state.litellm}; "
        f"this gateway: gunicorn 2 gevent workers, 1 Celery worker ({args.worker_threads} "
        f"threads), cache and caps off. Requests per cell: {requests}; median of "
        f"{args.repeat} repetitions (errors: all of them). Added = the target's percentile - "
        "direct's at the same concurrency, in ms (direct's rows: its own TTFT and inter-token "
        'delay). CPU in ms per request; "all server" = the target\'s own processes (gateway: '
        "API + worker + PostgreSQL + Redis).",
        "",
        "| target | concurrent | added TTFT p50 | added TTFT p99 | added inter-token p99 "
        "| requests/s | errors | "
        + " | ".join(title for title, _ in CPU_COLUMNS)
        + " | all server |",
        "|" + " --- |" * (8 + len(CPU_COLUMNS)),
    ]
    chosen = [t.name for t in state.targets]
    if "litellm" in args.only and "litellm" not in chosen:
        chosen.insert(1, "litellm")
    for concurrency in args.concurrency:
        for name in chosen:
            cell = final[str(concurrency)].get(name)
            if cell is None:
                lines.append(f"| {name} | {concurrency} | {state.litellm_missing} |" + " |" * 11)
                continue
            if name == "direct":
                added = (cell["ttft_ms"]["p50"], cell["ttft_ms"]["p99"])
                added += (cell["inter_token_ms"]["p99"],)
                figures = [f"({value:.1f})" for value in added]
            else:
                figures = [
                    f"{cell[key]:+.1f}"
                    for key in (
                        "added_ttft_p50_ms",
                        "added_ttft_p99_ms",
                        "added_inter_token_p99_ms",
                    )
                ]
            cpu = cell["cpu_ms_per_request"]
            figures += [f"{cell['requests_per_s']:.1f}", str(errors[str(concurrency), name])]
            figures += [
                f"{sum(cpu[g] for g in groups if g in cpu):.2f}"
                if any(g in cpu for g in groups)
                else ""  # not running (LiteLLM not installed)
                for _, groups in CPU_COLUMNS
            ]
            figures.append(f"{cell['server_cpu_ms_per_request']:.2f}" if SERVERS[name] else "")
            lines.append(f"| {name} | {concurrency} | " + " | ".join(figures) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,20,50", help="comma-separated levels")
    parser.add_argument(
        "--requests",
        default="50,200,500",
        help="measured requests per target at each level (one value: the same for all)",
    )
    parser.add_argument("--warmup", type=int, default=50, help="uncounted requests per target")
    parser.add_argument(
        "--only", default=",".join(TARGETS[1:]), help="targets besides direct (always run)"
    )
    parser.add_argument("--worker-threads", type=int, default=64, help="Celery worker threads")
    add_litellm_arguments(parser)
    add_run_arguments(parser, set_help="extra environment for the gateway's API and worker")
    args = parser.parse_args(argv)
    try:
        args.concurrency = [int(v) for v in args.concurrency.split(",")]
        args.requests = [int(v) for v in args.requests.split(",")]
    except ValueError:
        parser.error("--concurrency and --requests take comma-separated integers")
    if len(args.requests) == 1:
        args.requests *= len(args.concurrency)
    if len(args.requests) != len(args.concurrency):
        parser.error("--requests takes one value, or one per --concurrency level")
    if not all(1 <= v <= 100_000 for v in [*args.concurrency, *args.requests, args.repeat]):
        parser.error("--concurrency, --requests and --repeat must be between 1 and 100000")
    args.only = ["direct", *(name.strip() for name in args.only.split(",") if name.strip())]
    if unknown := set(args.only) - set(TARGETS):
        parser.error(f"--only: unknown {', '.join(sorted(unknown))} (from {', '.join(TARGETS)})")
    # Every request holds a worker thread for its whole generation.
    if args.worker_threads < max(args.concurrency):
        parser.error("--worker-threads must be at least the highest --concurrency")
    check_overrides(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = Stack.create(STORAGE, log, "peers-bench-")

    def set_up() -> State:
        state = start_stack(stack, args)
        log(f"warming up ({args.warmup} requests per target, not counted)")
        asyncio.run(warm_up(state.targets, args.warmup, max(args.concurrency)))
        return state

    outcome = run_repetitions(
        stack, args, set_up, lambda state: measure(stack, state, args), lambda state, _: state
    )
    if isinstance(outcome, int):
        return outcome
    runs, state = outcome
    final = median_of(runs)
    errors: Counter[tuple[str, str]] = Counter()
    kinds: Counter[str] = Counter()
    for run in runs:
        for level, cells in run.items():
            for name, cell in cells.items():
                errors[level, name] += cell["errors"]
                kinds.update(dict(cell["error_examples"]))
    if errors.total():
        log(f"{errors.total()} errors in all runs; the most frequent: {kinds.most_common(3)}")
    if args.json:
        config = {
            **vars(args),
            "first_token_delay": FIRST_TOKEN_DELAY,
            "token_delay": TOKEN_DELAY,
            "reply_tokens": REPLY_TOKENS,
            "litellm": state.litellm,
            "commit": git_head(),
            "errors_total": errors.total(),
        }
        print(json.dumps({"config": config, "median": final, "runs": runs}, indent=2))
    else:
        print(markdown(final, errors, state, args))
    return 1 if errors.total() else 0


if __name__ == "__main__":
    sys.exit(main())
