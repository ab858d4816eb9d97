"""The garbage-collection policy of the long-running processes (API and workers).

With a thousand open streams a process holds many container objects, and CPython's
default thresholds (700, 10, 10) ran a full collection every 1-2 s: up to 245 ms during
which every stream of the process stood still, ~18 % of the API's CPU
(docs/benchmarks.md). Two changes, applied once the application is loaded:

- gc.freeze() moves everything that exists then (modules, the app, SQLAlchemy's and
  Celery's machinery) out of the collector's sight: it lives as long as the process.
- Higher thresholds: a young collection every 50,000 net allocations instead of 700 (young
  cycles are still freed young), older generations far less often. Cyclic garbage that
  survives its first collections waits longer to be freed; the benchmark's memory per
  stream did not change.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 50, 100)


def apply() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
