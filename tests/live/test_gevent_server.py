"""The production server setup: gunicorn's gevent worker, with cooperative PostgreSQL.

Each test runs one gunicorn worker process, so what one process can do is what is seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
import requests

from tests.conftest import LiveServer, own_key_prefix, start_gunicorn, stop_gunicorn
from tests.helpers import bearer, register_over_http
from tests.sse_client import names, parse_sse_lines

STREAMS = 100


@pytest.fixture(scope="module")
def one_worker(migrated_database, redis_client, tmp_path_factory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("gevent") / "gunicorn.log"
    # Its own key prefix: its jobs go to queues that no Celery worker of this run reads,
    # so they stay queued for as long as a test needs.
    with own_key_prefix(redis_client, "gevent") as prefix:
        server = start_gunicorn(log, {"TEST_REDIS_KEY_PREFIX": prefix}, workers=1)
        yield server
        stop_gunicorn(server)


@pytest.fixture
def server(one_worker, app) -> LiveServer:
    """The one-worker server, with the database and Redis cleaned for this test."""
    return one_worker


def test_the_api_runs_gevent_workers(server):
    assert "Using worker: gevent" in server.log_text()


def _read_until_end(url: str, headers: dict, opened: threading.Barrier) -> list[str]:
    """The event names of one SSE stream, read to its end."""
    with requests.get(url, headers=headers, stream=True, timeout=30) as response:
        assert response.status_code == 200
        opened.wait(timeout=60)
        events, _comments = parse_sse_lines(response.iter_lines(decode_unicode=True))
    return names(events)


def test_one_process_holds_many_streams_at_once(server, redis_client):
    alice = register_over_http(server.url, "alice@example.com", "correct horse battery")
    headers = bearer(alice["access_token"])
    # No Celery worker reads this server's queues: the job stays queued, streams wait.
    job = requests.post(
        f"{server.url}/api/jobs", json={"message": "hello"}, headers=headers, timeout=10
    ).json()
    url = f"{server.url}/api/jobs/{job['id']}/events"
    # All streams must be open (and heard from) at the same time before the job ends: a
    # thread-per-request server with fewer threads than streams never gets there.
    opened = threading.Barrier(STREAMS + 1)
    blocked_before = redis_client.info("clients")["blocked_clients"]
    cancel_url = f"{server.url}/api/jobs/{job['id']}"
    with ThreadPoolExecutor(STREAMS) as pool:
        streams = [pool.submit(_read_until_end, url, headers, opened) for _ in range(STREAMS)]
        try:
            opened.wait(timeout=60)
            # One reader per process waits in Redis for them all, not an XREAD per stream.
            time.sleep(0.5)
            blocked = redis_client.info("clients")["blocked_clients"] - blocked_before
            assert blocked <= 2, blocked
            started = time.monotonic()
            health = requests.get(f"{server.url}/health", timeout=5)
            assert health.status_code == 200
            assert time.monotonic() - started < 2
        finally:  # the streams end with the job, also when an assertion failed
            cancel = requests.delete(cancel_url, headers=headers, timeout=10)
        assert cancel.status_code == 202, cancel.text
        ended = [stream.result(timeout=30) for stream in streams]
    assert ended == [["cancelled"]] * STREAMS


def test_a_slow_query_does_not_hold_up_other_requests(server, migrated_database):
    alice = register_over_http(server.url, "alice@example.com", "correct horse battery")
    lock = psycopg2.connect(migrated_database)
    try:
        with lock.cursor() as cursor:
            # Every request that loads a user now waits on PostgreSQL until the commit.
            cursor.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(1) as pool:
            me = pool.submit(
                requests.get,
                f"{server.url}/api/user/me",
                headers=bearer(alice["access_token"]),
                timeout=30,
            )
            time.sleep(0.5)
            assert not me.done()
            # Without psycogreen, psycopg2 would block the worker's whole event loop here.
            started = time.monotonic()
            health = requests.get(f"{server.url}/health", timeout=10)
            waited = time.monotonic() - started
            assert health.status_code == 200
            assert waited < 2, f"/health waited {waited:.1f} s behind a blocked query"
            assert not me.done()
            lock.commit()
            assert me.result(timeout=10).json()["email"] == "alice@example.com"
    finally:
        lock.close()


def test_quiet_streams_outlast_the_redis_socket_timeout(
    migrated_database, app, redis_client, tmp_path
):
    # Heartbeats further apart than a Redis command may take: the stream must not break
    # while the job waits in the queue.
    env = {"SSE_HEARTBEAT_SECONDS": "2", "REDIS_SOCKET_TIMEOUT": "1"}
    with own_key_prefix(redis_client, "quiet") as prefix:
        env["TEST_REDIS_KEY_PREFIX"] = prefix
        quiet = start_gunicorn(tmp_path / "gunicorn.log", env, workers=1)
        try:
            alice = register_over_http(quiet.url, "alice@example.com", "correct horse battery")
            headers = bearer(alice["access_token"])
            job = requests.post(
                f"{quiet.url}/api/jobs", json={"message": "hi"}, headers=headers, timeout=10
            ).json()
            url = f"{quiet.url}/api/jobs/{job['id']}/events"
            lines = []
            with requests.get(url, headers=headers, stream=True, timeout=30) as response:
                started = time.monotonic()
                for line in response.iter_lines(decode_unicode=True):
                    lines.append(line)
                    if time.monotonic() - started > 5 and "cancelled" not in " ".join(lines):
                        requests.delete(f"{quiet.url}/api/jobs/{job['id']}", headers=headers)
            assert lines.count(": ping") >= 2
            assert "event: cancelled" in lines
        finally:
            stop_gunicorn(quiet)
