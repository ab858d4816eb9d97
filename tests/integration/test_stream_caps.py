"""The cap on open streams per account, on real gunicorn processes sharing one Redis.

Two servers of one worker each stand for two API processes (or hosts), so each test
knows which process holds which stream. Their jobs go to queues under a key prefix of
their own that no Celery worker reads: a job stays queued and its streams stay open,
sending heartbeats, as on a job that hangs. The suite's shared server is not used: its
caps are generous, as other tests open many streams of one user.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from api.stream_leases import lease_key
from tests.conftest import (
    PASSWORD,
    LiveServer,
    make_admin,
    own_key_prefix,
    start_gunicorn,
    stop_gunicorn,
)
from tests.helpers import bearer, descendants, register_over_http
from tests.integration.conftest import http_error_of

USER_CAP, ADMIN_CAP = 3, 5
LEASE_TTL = 3  # seconds; each server renews its leases every second
HEARTBEAT = 0.25  # a client that left is noticed at the next heartbeat or two


@dataclass
class Servers:
    one: LiveServer
    two: LiveServer
    prefix: str  # their REDIS_KEY_PREFIX


@pytest.fixture(scope="module")
def two_servers(migrated_database, redis_client, tmp_path_factory) -> Iterator[Servers]:
    logs = tmp_path_factory.mktemp("stream-caps")
    with own_key_prefix(redis_client, "stream-caps") as prefix:
        env = {
            "TEST_REDIS_KEY_PREFIX": prefix,
            "MAX_OPEN_STREAMS_PER_USER": str(USER_CAP),
            "MAX_OPEN_STREAMS_PER_ADMIN": str(ADMIN_CAP),
            "STREAM_LEASE_TTL_SECONDS": str(LEASE_TTL),
            "SSE_HEARTBEAT_SECONDS": str(HEARTBEAT),
        }
        with ThreadPoolExecutor(2) as pool:  # started side by side: half the wait
            starting = [
                pool.submit(start_gunicorn, logs / f"{name}.log", env, workers=1)
                for name in ("one", "two")
            ]
            servers = [future.result() for future in starting]
        try:
            yield Servers(*servers, prefix=prefix)
        finally:
            for server in servers:
                stop_gunicorn(server)


@pytest.fixture
def servers(two_servers, app) -> Servers:
    """The two servers, with the database cleaned for this test (via `app`)."""
    return two_servers


@pytest.fixture
def opened() -> Iterator[list[requests.Response]]:
    """The streams a test opens, closed after it whatever happened."""
    streams: list[requests.Response] = []
    yield streams
    for stream in streams:
        stream.close()


def open_stream(server: LiveServer, headers: dict, job_id: str, opened: list):
    """An open event stream of the job on `server` (not read: the job never ends)."""
    response = requests.get(
        f"{server.url}/api/jobs/{job_id}/events", headers=headers, stream=True, timeout=10
    )
    opened.append(response)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


def refused(server: LiveServer, headers: dict, job_id: str, cap: int) -> dict:
    response = requests.get(
        f"{server.url}/api/jobs/{job_id}/events", headers=headers, stream=True, timeout=10
    )
    if response.status_code == 200:
        response.close()
        pytest.fail("a stream past the cap was opened")
    error = http_error_of(response, 429, "too_many_streams")
    assert error["details"] == {"open": cap, "limit": cap}
    assert f"the limit is {cap}" in error["message"]
    return error


def admitted_within(server: LiveServer, headers: dict, job_id: str, timeout: float, opened):
    """Seconds until a new stream of the job is admitted on `server` (fails after `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        response = requests.get(
            f"{server.url}/api/jobs/{job_id}/events", headers=headers, stream=True, timeout=10
        )
        if response.status_code == 200:
            opened.append(response)
            return time.monotonic() - started
        assert response.status_code == 429, response.text
        time.sleep(0.05)
    pytest.fail(f"no stream admitted within {timeout} s")


def leases(redis_client, servers: Servers, user_id: str) -> list[str]:
    """The user's leases that have not lapsed (a lapsed one stays in the set until the
    next stream is opened)."""
    seconds, microseconds = redis_client.time()
    now_ms = seconds * 1000 + microseconds // 1000
    return redis_client.zrangebyscore(lease_key(servers.prefix, user_id), f"({now_ms}", "+inf")


def wait_for_leases(redis_client, servers: Servers, user_id: str, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while len(held := leases(redis_client, servers, user_id)) != count:
        assert time.monotonic() < deadline, held
        time.sleep(0.05)
    return held


def account(server: LiveServer, email: str) -> tuple[str, dict]:
    """(user id, headers) of a new account."""
    registered = register_over_http(server.url, email, PASSWORD)
    return registered["id"], bearer(registered["access_token"])


def queued_job(server: LiveServer, headers: dict) -> str:
    response = requests.post(
        f"{server.url}/api/jobs", json={"message": "hello"}, headers=headers, timeout=10
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_the_cap_counts_the_streams_of_both_processes(servers, redis_client, opened):
    one, two = servers.one, servers.two
    user_id, headers = account(one, "alice@example.com")
    job_id = queued_job(one, headers)

    open_stream(one, headers, job_id, opened)
    on_two = open_stream(two, headers, job_id, opened)
    open_stream(one, headers, job_id, opened)

    held = wait_for_leases(redis_client, servers, user_id, USER_CAP)
    assert len({lease.split(":")[1] for lease in held}) == 2  # held by two processes
    refused(one, headers, job_id, USER_CAP)
    refused(two, headers, job_id, USER_CAP)

    # Both processes renew their leases: past the lease time the streams still count.
    time.sleep(LEASE_TTL * 1.5)
    refused(two, headers, job_id, USER_CAP)

    # Closing a stream on one process frees a slot on the other, before any lease lapses.
    on_two.close()
    assert admitted_within(one, headers, job_id, LEASE_TTL, opened) < LEASE_TTL
    refused(two, headers, job_id, USER_CAP)


def test_a_client_that_vanishes_frees_its_slot_within_the_lease_time(servers, redis_client, opened):
    user_id, headers = account(servers.one, "alice@example.com")
    job_id = queued_job(servers.one, headers)
    for _ in range(USER_CAP - 1):
        open_stream(servers.one, headers, job_id, opened)

    # A client that sends its request and vanishes without reading a byte, its socket
    # reset (SO_LINGER 0) as when its machine drops off the network and comes back.
    host, port = servers.two.url.removeprefix("http://").split(":")
    vanishing = socket.create_connection((host, int(port)), timeout=10)
    request = (
        f"GET /api/jobs/{job_id}/events HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {headers['Authorization']}\r\n\r\n"
    )
    vanishing.sendall(request.encode())
    wait_for_leases(redis_client, servers, user_id, USER_CAP)
    refused(servers.one, headers, job_id, USER_CAP)
    vanishing.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    vanishing.close()

    assert admitted_within(servers.one, headers, job_id, LEASE_TTL, opened) < LEASE_TTL


def test_an_admin_may_hold_more_streams(servers, app, client, redis_client, opened):
    admin = make_admin(app, client, "root@example.com")
    job_id = queued_job(servers.one, admin.headers)

    for number in range(ADMIN_CAP):
        open_stream(servers.one if number % 2 else servers.two, admin.headers, job_id, opened)

    wait_for_leases(redis_client, servers, admin.id, ADMIN_CAP)
    refused(servers.one, admin.headers, job_id, ADMIN_CAP)


def test_the_streams_of_a_killed_process_free_their_slots_within_the_lease_time(
    servers, redis_client, opened
):
    user_id, headers = account(servers.one, "alice@example.com")
    job_id = queued_job(servers.one, headers)
    open_stream(servers.one, headers, job_id, opened)
    for _ in range(USER_CAP - 1):
        open_stream(servers.two, headers, job_id, opened)
    wait_for_leases(redis_client, servers, user_id, USER_CAP)
    refused(servers.one, headers, job_id, USER_CAP)

    (one_worker,) = descendants(servers.one.process.pid)
    (worker,) = descendants(servers.two.process.pid)
    os.kill(worker, signal.SIGKILL)  # no code of its runs again: its leases can only lapse
    killed_at = time.monotonic()

    elapsed = admitted_within(servers.one, headers, job_id, LEASE_TTL + 2, opened)
    assert time.monotonic() - killed_at <= LEASE_TTL + 2, elapsed
    # Left: the stream that process one served all along, and the new one.
    held = wait_for_leases(redis_client, servers, user_id, 2)
    assert {lease.split(":")[1] for lease in held} == {str(one_worker)}
    # gunicorn starts another worker, for the tests that come after.
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{servers.two.url}/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, servers.two.log_text()
        time.sleep(0.2)
