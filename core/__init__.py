"""What every process of the gateway shares, below the job pipeline: storage and errors.

    db.py, redis.py      the PostgreSQL (SQLAlchemy) and Redis clients, one per process
    models/              the tables
    repositories/        the queries, one module per table
    errors.py            the error types services raise (each with its HTTP status)
    metrics_store.py     counters and histograms kept in Redis by every process

It imports nothing of the gateway's other packages: the job pipeline (pipeline/) builds
on it, and the HTTP API (api/) and the worker (worker/) on both.
"""
