"""nginx/nginx.conf in front of a real gunicorn server, as docker compose runs them.

Debian's nginx runs the project's config with only the addresses changed: the upstream
names point at this run's gunicorn, nginx listens on 127.0.0.2, and clients connect from
127.0.0.3, so the address the app sees tells whether X-Forwarded-For was honoured.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, LiveServer, free_port, start_gunicorn, stop_gunicorn, stop_process
from tests.helpers import bearer, register_over_http
from tests.sse_client import sse_events, text_of

NGINX_HOST = "127.0.0.2"
CLIENT_HOST = "127.0.0.3"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


@dataclass
class Proxy:
    url: str
    port: int
    app: LiveServer
    access_log: Path

    def call(self, method: str, path: str, body: bytes | None = None, headers=None):
        """One request from CLIENT_HOST: (status, headers, body)."""
        conn = http.client.HTTPConnection(
            NGINX_HOST, self.port, timeout=30, source_address=(CLIENT_HOST, 0)
        )
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def app_records(self, request_id: str) -> list[dict]:
        """The app's JSON log lines of one request."""
        records = []
        for line in self.app.log_text().splitlines():
            if line.startswith("{") and f'"{request_id}"' in line:
                records.append(json.loads(line))
        return records


def eventually(check, timeout: float = 5.0) -> bool:
    """Whether `check()` becomes true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def local_config(app_port: int, port: int, where: Path) -> Path:
    text = (ROOT / "nginx" / "nginx.conf").read_text()
    replacements = {
        "server api:8000;": f"server 127.0.0.1:{app_port};",
        "server flower:5555;": f"server 127.0.0.1:{free_port()};",  # nothing listens
        "listen 80;": f"listen {NGINX_HOST}:{port};",
        "access_log /dev/stdout gateway;": f"access_log {where}/access.log gateway;",
        "error_log /dev/stderr warn;": f"error_log {where}/error.log warn;",
        "http {": f"http {{\n    client_body_temp_path {where}/body;\n"
        f"    proxy_temp_path {where}/proxy;",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    if os.geteuid() == 0:  # nginx's workers would otherwise switch to nobody
        text = "user root;\n" + text
    config = where / "nginx.conf"
    config.write_text(text)
    return config


@pytest.fixture(scope="module")
def proxy(migrated_database, workers, tmp_path_factory) -> Iterator[Proxy]:
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("no nginx here (make test installs Debian's)")
    where = tmp_path_factory.mktemp("nginx")
    app = start_gunicorn(where / "gunicorn.log", {"PROXY_FIX_HOPS": "1"}, workers=1)
    port = free_port()
    config = local_config(int(app.url.rsplit(":", 1)[1]), port, where)
    process = subprocess.Popen(
        [
            nginx,
            "-c",
            str(config),
            "-e",
            str(where / "error.log"),
            "-g",
            f"daemon off; pid {where}/nginx.pid;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{NGINX_HOST}:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{url}/health", timeout=1)
                break
            except requests.RequestException:
                if process.poll() is not None:
                    raise RuntimeError((where / "error.log").read_text()) from None
                time.sleep(0.1)
        yield Proxy(url=url, port=port, app=app, access_log=where / "access.log")
    finally:
        stop_process(process)
        stop_gunicorn(app)


@pytest.fixture
def alice(proxy, app) -> dict:
    return register_over_http(proxy.url, "alice@example.com", "correct horse battery")


def test_tokens_stream_through_nginx(proxy, alice):
    headers = bearer(alice["access_token"])
    job = requests.post(
        f"{proxy.url}/api/jobs",
        json={"message": "hello through nginx"},
        headers=headers,
        timeout=10,
    ).json()
    with requests.get(
        f"{proxy.url}/api/jobs/{job['id']}/events", headers=headers, stream=True, timeout=30
    ) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1].event == "done"
    tokens = [e for e in events if e.event == "token"]
    assert len(tokens) > 1
    final = requests.get(f"{proxy.url}/api/jobs/{job['id']}", headers=headers, timeout=10).json()
    assert text_of(events) == final["output"] != ""


def test_the_app_sees_the_client_address_not_a_forged_one(proxy, app):
    status, _, _ = proxy.call(
        "GET", "/health", headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "xff-1"}
    )
    assert status == 200
    access = [r for r in proxy.app_records("xff-1") if r.get("path") == "/health"]
    # nginx connects from 127.0.0.1; the client is CLIENT_HOST; the forged hop is ignored.
    assert [r["remote_addr"] for r in access] == [CLIENT_HOST]


def test_request_ids_are_one_from_nginx_to_the_app(proxy, app):
    _, headers, _ = proxy.call("GET", "/health", headers={"X-Request-ID": "client-chosen-id"})
    assert headers["X-Request-ID"] == "client-chosen-id"
    # An id that could forge log or JSON content is replaced, by nginx and the app alike.
    _, headers, _ = proxy.call("GET", "/health", headers={"X-Request-ID": 'bad" id'})
    replaced = headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert proxy.app_records(replaced)
    # nginx writes its access line once the request is finalized, just after the answer.
    assert eventually(lambda: f'"{replaced}"' in proxy.access_log.read_text())


def test_security_headers(proxy, app):
    _, headers, _ = proxy.call("GET", "/health")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "nginx/" not in headers.get("Server", "")


def test_metrics_are_not_reachable_from_outside(proxy, app):
    _error(proxy.call("GET", "/metrics"), 404, "not_found")
    # The same server answers inside (the scraper's path), and /api/metrics stays an API.
    assert requests.get(f"{proxy.app.url}/metrics", timeout=10).status_code == 200
    status, _, body = proxy.call("GET", "/api/metrics/")
    assert status == 401 and json.loads(body)["error"]["code"]


def _error(status_headers_body, status: int, code: str) -> dict:
    got, headers, body = status_headers_body
    assert got == status, body
    assert headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]
    assert error["request_id"] == headers["X-Request-ID"]
    return error


def test_a_body_over_the_limit_is_refused_in_the_error_shape(proxy, alice):
    headers = {**bearer(alice["access_token"]), "Content-Type": "application/json"}
    body = json.dumps({"message": "x" * (1024 * 1024 + 10)}).encode()
    _error(proxy.call("POST", "/api/jobs/", body, headers), 413, "payload_too_large")


def test_batches_may_be_larger_than_other_requests(proxy, alice):
    headers = {**bearer(alice["access_token"]), "Content-Type": "application/jsonl"}
    body = b"not a batch line\n" * (2 * 1024 * 1024 // 17)  # 2 MiB: past nginx, to the app
    status, response_headers, raw = proxy.call("POST", "/api/batches/", body, headers)
    assert status == 400, raw[:500]
    assert json.loads(raw)["error"]["code"] == "invalid_batch"
    assert response_headers["X-Request-ID"]


def test_an_unreachable_upstream_is_a_503_in_the_error_shape(proxy, app):
    # Nothing listens where this test's nginx expects Flower.
    error = _error(proxy.call("GET", "/flower/"), 503, "service_unavailable")
    assert "retry" in error["message"]
