"""Stream leases in Redis: the cap across processes, lapsing, renewal, Redis losing them.

These drive api/stream_leases.StreamLeases directly, one object per simulated API process,
on the run's Redis; a crashed process is a real one, killed with SIGKILL.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import redis

from api.stream_leases import StreamLeases, lease_key
from tests.conftest import ROOT

TTL = 0.9  # seconds: renewed every 0.3 s


def process(app, redis_client, ttl: float = TTL) -> StreamLeases:
    """The leases of one simulated API process."""
    return StreamLeases(redis_client, app.config["REDIS_KEY_PREFIX"], ttl)


def open_leases(app, redis_client, user_id) -> list[str]:
    return redis_client.zrange(lease_key(app.config["REDIS_KEY_PREFIX"], user_id), 0, -1)


def admitted_within(leases: StreamLeases, user, cap: int, timeout: float) -> str | None:
    """A lease as soon as the cap admits one, trying until `timeout`; None if none came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() <= deadline:
        lease, _ = leases.acquire(user, cap)
        if lease is not None:
            return lease
        time.sleep(0.05)
    return None


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_cap_counts_the_streams_of_every_process(app, redis_client):
    user = uuid.uuid4()
    one, two = process(app, redis_client), process(app, redis_client)

    first, _ = one.acquire(user, 3)
    second, _ = two.acquire(user, 3)
    third, open_now = one.acquire(user, 3)
    refused, open_then = two.acquire(user, 3)

    assert None not in (first, second, third) and open_now == 3
    assert refused is None and open_then == 3
    # Another account has its own count.
    elsewhere, _ = one.acquire(uuid.uuid4(), 3)
    assert elsewhere is not None
    one.release(elsewhere)

    two.release(second)
    assert sorted(open_leases(app, redis_client, user)) == sorted([first, third])
    admitted, open_now = one.acquire(user, 3)
    assert admitted is not None and open_now == 3
    for lease in (first, third, admitted):
        one.release(lease)
    assert open_leases(app, redis_client, user) == []


def test_a_lease_names_its_process_and_releasing_twice_is_harmless(app, redis_client):
    user = uuid.uuid4()
    leases = process(app, redis_client)
    lease, _ = leases.acquire(user, 1)

    assert lease.split(":")[1].isdigit()  # host:pid:random

    leases.release(lease)
    leases.release(lease)
    assert leases.held() == 0
    again, _ = leases.acquire(user, 1)
    assert again is not None
    leases.release(again)


def test_renewed_leases_outlive_their_ttl(app, redis_client):
    user = uuid.uuid4()
    leases = process(app, redis_client)
    held = [leases.acquire(user, 2)[0] for _ in range(2)]
    first_expiry = max(
        score
        for _, score in redis_client.zrange(
            lease_key(app.config["REDIS_KEY_PREFIX"], user), 0, -1, withscores=True
        )
    )

    time.sleep(TTL * 3)

    assert sorted(open_leases(app, redis_client, user)) == sorted(held)
    assert leases.acquire(user, 2) == (None, 2)
    scores = redis_client.zrange(
        lease_key(app.config["REDIS_KEY_PREFIX"], user), 0, -1, withscores=True
    )
    assert min(score for _, score in scores) > first_expiry
    for lease in held:
        leases.release(lease)


CRASHING_PROCESS = """
import sys, time, redis
from api.stream_leases import StreamLeases
url, prefix, user, ttl = sys.argv[1:5]
leases = StreamLeases(redis.Redis.from_url(url, decode_responses=True), prefix, float(ttl))
assert leases.acquire(user, 2)[0] and leases.acquire(user, 2)[0]
print("holding", flush=True)
time.sleep(600)
"""


def test_the_leases_of_a_killed_process_lapse_within_the_ttl(app, redis_client):
    user = str(uuid.uuid4())
    ttl = 2.0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CRASHING_PROCESS,
            app.config["REDIS_URL"],
            app.config["REDIS_KEY_PREFIX"],
            user,
            str(ttl),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        time.sleep(ttl)  # its renewer kept them past their first TTL
        survivor = process(app, redis_client, ttl)
        assert survivor.acquire(user, 2) == (None, 2)

        holder.kill()  # SIGKILL: nothing is released
        holder.wait(timeout=10)
        killed_at = time.monotonic()

        lease = admitted_within(survivor, user, 2, ttl + 1)
        assert lease is not None
        assert time.monotonic() - killed_at <= ttl + 0.5
        survivor.release(lease)
    finally:
        holder.kill()
        holder.wait(timeout=10)
        holder.stdout.close()


def test_leases_lost_with_redis_data_are_written_back_by_the_renewer(app, redis_client):
    user = uuid.uuid4()
    leases = process(app, redis_client)
    held = sorted(leases.acquire(user, 5)[0] for _ in range(2))

    redis_client.delete(lease_key(app.config["REDIS_KEY_PREFIX"], user))  # Redis restarted

    # Meanwhile the account may open more streams, never fewer; then the count is back.
    assert wait_until(lambda: sorted(open_leases(app, redis_client, user)) == held, TTL)
    assert redis_client.pttl(lease_key(app.config["REDIS_KEY_PREFIX"], user)) > 0
    for lease in held:
        leases.release(lease)


def test_a_release_that_cannot_reach_redis_lapses_instead(app, redis_client, monkeypatch):
    user = uuid.uuid4()
    leases = process(app, redis_client)
    lease, _ = leases.acquire(user, 1)

    def unreachable(*_args):
        raise redis.ConnectionError("Redis is away")

    monkeypatch.setattr(redis_client, "zrem", unreachable)
    leases.release(lease)  # logged, not raised
    monkeypatch.undo()

    assert open_leases(app, redis_client, user) == [lease]  # no one renews it now
    again = admitted_within(leases, user, 1, TTL + 1)
    assert again is not None
    leases.release(again)


def test_a_lease_released_during_a_renewal_is_not_written_back(app, redis_client):
    user = uuid.uuid4()
    leases = process(app, redis_client, ttl=60)  # no renewal of its own during the test
    kept, _ = leases.acquire(user, 5)
    released, _ = leases.acquire(user, 5)
    key = lease_key(app.config["REDIS_KEY_PREFIX"], user)

    # The renewer took its list of leases; the stream closed before the renewal ran.
    leases.release(released)
    leases.renew({key: [kept, released]})

    assert open_leases(app, redis_client, user) == [kept]
    leases.release(kept)
