"""The job pipeline: a job's life, shared by the HTTP API (api/) and the worker (worker/).

A job is written by the API's submit (api/services/jobs.py: route, persist); from there,
read in this order to follow it to its last event:

    queue.py           task names, routing by tier, putting a job on its queue
    lifecycle.py       enqueue, claim, finish, cancel: how a job moves between states
    generations.py     identical requests sharing one generation; cached answers replayed
    events.py          the events a job's stream carries, their builders and the parser
    streams.py         a job's Redis keys and the stream writer
    outcomes.py        what an ended job leaves: its answer message, usage row, metrics
    response_cache.py  the cached answers and the single-flight markers
    prompts.py         the messages a model gets (the system prompt added)
    batch_progress.py  ending a batch once its last job has ended
    app.py             what a process attaches to move jobs: PostgreSQL, Redis, Celery

A job's states and tiers are core/statuses.py (the database's columns hold them too).
It builds on core/ (storage) and never imports api/ or worker/ (make lint checks this).
"""
