"""The text report of bench/streams.py: each step, the sweep's table and its best steps."""

from __future__ import annotations

import math
from typing import Any

TARGET_P99_MS = 100.0


def fmt_ms(stats: dict[str, float]) -> str:
    return " / ".join(f"{stats[q]:.1f}" for q in ("p50", "p90", "p99", "max"))


def print_step(step: dict[str, Any], repeat: int) -> None:
    tokens, memory, cpu = step["tokens"], step["memory"], step["cpu"]
    base, opened = memory["gunicorn_base"], memory["gunicorn_open"]
    flow = memory["gunicorn_flow"]
    label = f" (median of {repeat})" if repeat > 1 else ""
    print(
        f"\n{step['streams']:.0f} streams x {step['rate_per_stream']:g} tokens/s for "
        f"{step['duration_s']:.0f} s = {step['offered_tokens_per_s']:,.0f} tokens/s offered{label}"
    )
    print(
        f"  open: {step['open']['opened']:.0f} in {step['open']['wall_s']:.1f} s "
        f"(connect -> `start` p50 {step['open']['per_stream_ms']['p50']:.0f} ms, "
        f"p99 {step['open']['per_stream_ms']['p99']:.0f} ms)"
    )
    print(f"  relay delay ms, write -> client read  p50/p90/p99/max: {fmt_ms(step['relay_ms'])}")
    print(
        f"  Redis entry id -> client read        p50/p90/p99/max: "
        f"{fmt_ms(step['redis_entry_to_client_ms'])}"
    )
    print(
        f"  tokens: expected {tokens['expected']:,.0f}, written {tokens['written']:,.0f}, "
        f"delivered {tokens['delivered']:,.0f}; steady state "
        f"{tokens['delivered_per_s_steady']:,.0f}/s (slowest second "
        f"{tokens['delivered_per_s_min_second']:,.0f}); "
        f"done {tokens['streams_done']:.0f}/{step['streams']:.0f}"
    )
    kinds = ", ".join(f"{k} {v}" for k, v in step["errors_by_kind"].items()) or "none"
    print(f"  errors: {step['errors']:.0f} ({kinds})")
    for example in step["error_examples"][:3]:
        print(f"    {example}")
    workers = ", ".join(f"{v:.0f}" for v in opened["rss_mb_per_worker"])
    print(
        f"  gunicorn RSS MB: before {base['rss_mb_total']:.0f}, streams open "
        f"{opened['rss_mb_total']:.0f} (workers {workers}), end of flow "
        f"{flow['rss_mb_total']:.0f}; per stream {memory['kb_per_stream_open']:.1f} kB open, "
        f"{memory['kb_per_stream_flow']:.1f} kB flowing"
    )
    print(
        f"  sockets per worker {memory['worker_sockets_open']}, Redis clients added "
        f"{memory['redis_clients_added']:.0f}; client "
        f"{memory['client_kb_per_stream']:.1f} kB/stream"
    )
    groups = ", ".join(f"{k} {v:.0f}" for k, v in cpu["pct_of_one_core"].items())
    print(
        f"  CPU % of one core: {groups}, others {cpu['others_pct_of_one_core']:.0f}; machine "
        f"{cpu['machine_busy_pct_of_all_cores']:.0f}% busy; load average "
        f"{cpu['loadavg_start'][0]:.2f} -> {cpu['loadavg_end'][0]:.2f}"
    )
    per_token = ", ".join(f"{k} {v:.0f}" for k, v in cpu["us_per_token"].items())
    print(f"  CPU per relayed token, us: {per_token}")
    print(
        f"  client loop lag ms p99 {step['client_loop_lag_ms']['p99']:.1f}, max "
        f"{step['client_loop_lag_ms']['max']:.1f}; writer behind schedule max "
        f"{step['writer_late_ms_max']:.1f} ms"
    )
    verdict = "met" if step["target_met"] else "NOT MET"
    print(
        f"  target p99 <= {TARGET_P99_MS:g} ms with no errors: {verdict}; "
        f"kept up: {'yes' if step['kept_up'] else 'NO'}"
    )
    for name, prof in (step.get("profile") or {}).items():
        if prof.get("samples"):
            print(f"  {name} ({prof['samples']} samples), self %:")
            for function, pct in prof["self_pct"][:10]:
                print(f"    {pct:5.1f}  {function}")


def print_report(report: dict[str, Any]) -> None:
    config = report["config"]
    print(
        f"\nStreams benchmark: gunicorn {config['workers']} worker(s) "
        f"(config/gunicorn.conf.py, {' '.join(config['env_overrides']) or 'defaults'}); "
        f"code {config['git']['describe']}"
        + (
            f" (api/ changed: {', '.join(config['git']['api_changed'])})"
            if config["git"]["api_changed"]
            else ""
        )
    )
    for step in report["steps"]:
        print_step(step["median"], config["repeat"])
    if len(report["steps"]) > 1:
        print(
            "\n  streams  rate/s   offered/s  delivered/s   p50 ms   p99 ms   max ms"
            "  gunicorn%  client%  kept up"
        )
        for step in report["steps"]:
            m = step["median"]
            cpu = m["cpu"]["pct_of_one_core"]
            print(
                f"  {m['streams']:>7.0f} {m['rate_per_stream']:>7g}"
                f" {m['offered_tokens_per_s']:>11,.0f}"
                f" {m['tokens']['delivered_per_s_steady']:>12,.0f} {m['relay_ms']['p50']:>8.1f}"
                f" {m['relay_ms']['p99']:>8.1f} {m['relay_ms']['max']:>8.1f}"
                f" {cpu.get('gunicorn', math.nan):>10.0f} {cpu.get('client', math.nan):>8.0f}"
                f"  {'yes' if m['kept_up'] else 'NO'}"
            )
    best = report["summary"]
    if best["max_sustained"]:
        s = best["max_sustained"]
        print(
            f"\nmax sustained: {s['delivered_per_s']:,.0f} tokens/s ({s['streams']:.0f} x "
            f"{s['rate_per_stream']:g}/s), relay p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms"
        )
    if best["max_within_target"]:
        s = best["max_within_target"]
        print(
            f"max with p99 <= {TARGET_P99_MS:g} ms: {s['delivered_per_s']:,.0f} tokens/s "
            f"({s['streams']:.0f} x {s['rate_per_stream']:g}/s), p99 {s['p99_ms']:.1f} ms"
        )


def best_steps(steps: list[dict[str, Any]]) -> dict[str, Any]:
    def describe(m: dict[str, Any]) -> dict[str, Any]:
        return {
            "streams": m["streams"],
            "rate_per_stream": m["rate_per_stream"],
            "delivered_per_s": m["tokens"]["delivered_per_s_steady"],
            "p50_ms": m["relay_ms"]["p50"],
            "p99_ms": m["relay_ms"]["p99"],
        }

    medians = [s["median"] for s in steps]
    sustained = [m for m in medians if m["kept_up"]]
    within = [m for m in sustained if m["relay_ms"]["p99"] <= TARGET_P99_MS]

    def top(items: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not items:
            return None
        return describe(max(items, key=lambda m: m["tokens"]["delivered_per_s_steady"]))

    return {"max_sustained": top(sustained), "max_within_target": top(within)}
