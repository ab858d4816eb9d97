"""The garbage-collection policy the API and worker processes apply once loaded."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path

import pytest

from config import gc_policy


@pytest.fixture
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_apply_freezes_what_exists_and_raises_the_thresholds(restore_gc):
    gc.unfreeze()
    kept = type("Loaded", (), {})()  # stands for the loaded application
    assert gc.is_tracked(kept) and any(obj is kept for obj in gc.get_objects())

    gc_policy.apply()

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == gc_policy.THRESHOLDS
    # Frozen objects are out of the collector's sight: a full collection skips them.
    assert all(obj is not kept for obj in gc.get_objects())


def test_gunicorn_applies_it_once_the_app_is_loaded(monkeypatch):
    settings = runpy.run_path(str(Path(__file__).parents[2] / "config" / "gunicorn.conf.py"))
    applied = []
    monkeypatch.setattr(gc_policy, "apply", lambda: applied.append(True))

    settings["post_worker_init"](worker=None)

    assert applied == [True]
