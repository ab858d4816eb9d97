"""The per-process relay: one Redis reader serving every follower of every job stream."""

from __future__ import annotations

import threading
import time
import uuid

from api.relay import IDLE_SECONDS, _relay, read_events
from core.redis import redis_store
from pipeline.events import Draft, EventName
from pipeline.streams import EventWriter


def writer(app, job_id: str) -> EventWriter:
    return EventWriter(
        redis_store.client, app.config["REDIS_KEY_PREFIX"], job_id, maxlen=1000, ttl=60
    )


def collect(app, job_id: str, after: str = "0-0", wait: float = 0.2) -> list:
    with app.app_context():
        return list(read_events(job_id, after=after, wait=wait))


def test_followers_at_different_places_each_get_their_own_events(app):
    job = str(uuid.uuid4())
    with app.app_context():
        w = writer(app, job)
        first = w.emit(Draft(EventName.START, {"n": 0}))
        w.emit(Draft(EventName.TOKEN, {"text": "a"}))
    results = {}

    def follow(name: str, after: str) -> None:
        with app.app_context():
            results[name] = [
                (e.name, e.data) for e in read_events(job, after=after, wait=5) if e is not None
            ]

    threads = [
        threading.Thread(target=follow, args=("from_start", "0-0")),
        threading.Thread(target=follow, args=("after_start", first)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # both are following: the rest arrives live
    with app.app_context():
        w.emit(Draft(EventName.TOKEN, {"text": "b"}))
        w.emit(Draft(EventName.DONE, {"n": 3}))
    for thread in threads:
        thread.join(timeout=10)
    tail = [("token", {"text": "a"}), ("token", {"text": "b"}), ("done", {"n": 3})]
    assert results["from_start"] == [("start", {"n": 0}), *tail]
    assert results["after_start"] == tail


def test_silence_yields_heartbeats_until_the_end(app):
    job = str(uuid.uuid4())
    seen = []

    def follow() -> None:
        with app.app_context():
            for event in read_events(job, wait=0.1):
                seen.append(None if event is None else event.name)

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.5)
    with app.app_context():
        writer(app, job).emit(Draft(EventName.DONE, {}))
    thread.join(timeout=10)
    assert seen[-1] == "done"
    assert seen.count(None) >= 3


def test_one_reader_for_many_followers_and_none_when_idle(app):
    jobs = [str(uuid.uuid4()) for _ in range(20)]
    before = {t for t in threading.enumerate() if t.name == "relay"}  # other tests' apps
    threads = [threading.Thread(target=collect, args=(app, job, "0-0", 5)) for job in jobs]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    readers = [t for t in threading.enumerate() if t.name == "relay" and t not in before]
    assert len(readers) == 1
    with app.app_context():
        for job in jobs:
            writer(app, job).emit(Draft(EventName.DONE, {}))
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    # Nobody follows anything: the reader stops rather than polling Redis forever.
    readers[0].join(timeout=IDLE_SECONDS + 5)
    assert not readers[0].is_alive()
    with app.app_context():
        assert _relay(app)._reader is None


def test_a_late_follower_from_the_start_gets_what_earlier_ones_already_had(app):
    job = str(uuid.uuid4())
    early, late = [], []

    def follow(into: list, after: str) -> None:
        with app.app_context():
            into.extend(e.name for e in read_events(job, after=after, wait=5) if e is not None)

    first = threading.Thread(target=follow, args=(early, "0-0"))
    first.start()
    with app.app_context():
        w = writer(app, job)
        w.emit(Draft(EventName.START, {}))
        w.emit(Draft(EventName.TOKEN, {"text": "a"}))
    time.sleep(0.3)  # the reader has moved past both entries for the first follower
    second = threading.Thread(target=follow, args=(late, "0-0"))
    second.start()
    time.sleep(0.3)
    with app.app_context():
        w.emit(Draft(EventName.DONE, {}))
    for thread in (first, second):
        thread.join(timeout=10)
    assert early == late == ["start", "token", "done"]
