"""Request ids and the access log: one JSON line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, request

from config.logging_setup import request_id_var, user_id_var

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is kept only when it is short and plain, so it cannot forge log content.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("api.access")


def incoming_request_id() -> str:
    candidate = request.headers.get(REQUEST_ID_HEADER, "")
    if _VALID_REQUEST_ID.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex


def init_app(app: Flask) -> None:
    @app.before_request
    def start_request() -> None:
        g.request_id = incoming_request_id()
        g.request_started = time.perf_counter()
        request_id_var.set(g.request_id)
        user_id_var.set(None)

    @app.after_request
    def finish_request(response):
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
        identity = g.get("identity")
        access_log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "user_id": str(identity.user_id) if identity else None,
                "remote_addr": request.remote_addr,
                "user_agent": request.headers.get("User-Agent"),
            },
        )
        return response

    @app.teardown_request
    def forget_request(_exc: BaseException | None) -> None:
        # Threads are reused: lines logged after this request must not carry its ids.
        request_id_var.set(None)
        user_id_var.set(None)
