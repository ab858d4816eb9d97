"""gunicorn settings for the API, read from the environment.

Run: gunicorn -c config/gunicorn.conf.py "api:create_app()"
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))

# gevent: every request is a greenlet, so one process holds many long-lived SSE streams
# (each one mostly waits on a blocking Redis XREAD) without a thread per stream. gunicorn
# monkey-patches the standard library in each worker before the app is imported, which
# makes redis-py's, kombu's and httpx's sockets cooperative; psycopg2 is a C library and
# needs psycogreen (post_fork below). gthread remains available for comparison.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
# Simultaneous connections per gevent worker: streams count until they end. Streams share
# the process's one Redis reader (api/relay.py), so the open-file limit (ulimit -n;
# docker-compose.yml raises it) must allow this many client sockets plus the pools.
# 2,000 streams per instance were measured (docs/benchmarks.md); 2 workers x 2,000 leaves
# room for the requests that come while that many streams are open.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "2000"))
# Used by gthread only.
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# The arbiter kills a worker whose heartbeat stops for this long. Under gevent the
# heartbeat runs in its own greenlet, so long streams do not trip it; only a worker whose
# event loop is blocked (a CPU-bound or non-cooperative call) does.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On SIGTERM a worker stops accepting and gives open requests this long. Streams still
# open then are closed; browsers and the SSE clients reconnect (the stream says
# `retry: 2000`) with Last-Event-ID to another instance and resume without a gap. Keep it
# below the orchestrator's kill delay (docker compose's stop_grace_period).
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# nginx keeps upstream connections alive (see nginx/nginx.conf); a little longer here
# than nginx's idle timeout avoids closing a connection nginx is about to reuse.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
# The app writes one JSON access line per request (with user and request id), so
# gunicorn's own access log would only duplicate it.
accesslog = None
errorlog = "-"
# X-Forwarded-* is interpreted by the app (ProxyFix, PROXY_FIX_HOPS), not by gunicorn.
forwarded_allow_ips = "127.0.0.1"

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logging_setup.json_formatter"}},
    "filters": {"context": {"()": "config.logging_setup.ContextFilter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["context"],
        }
    },
    # The app factory attaches the root handler itself (the same one the workers use).
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}

# gunicorn's runtime control socket is not used; one shared path per user would also
# collide when several servers run on one host.
control_socket_disable = True


def post_fork(server, worker):
    """Make psycopg2 yield to other greenlets while it waits on PostgreSQL."""
    # Without this a slow query blocks every stream and request of the worker. It must
    # run before the app opens its first connection, i.e. before the app is loaded.
    # Checked on the worker itself: `-k` on the command line overrides worker_class.
    if type(worker).__module__ == "gunicorn.workers.ggevent":
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()


def post_worker_init(worker):
    """Once the app is loaded: keep the garbage collector's pauses out of the streams."""
    from config.gc_policy import apply

    apply()
