"""gunicorn settings for the API, read from the environment.

Run: gunicorn -c config/gunicorn.conf.py "api:create_app()"
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads keep a slow client from holding a whole process; the streaming issue revisits
# the worker class (gevent) once there are long-lived SSE connections.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
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
