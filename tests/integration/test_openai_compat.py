import json, uuid, time
import pytest, requests, openai
from tests.conftest import make_admin

pytestmark = pytest.mark.live

def key_for(client):
    r = client.post("/api/user/api-keys", json={"name": "sdk"})
    assert r.status_code == 201, r.text
    print(r.json())
    return r.json()["key"]

def test_explore(alice_http, live, fake_ollama, app, client):
    key = key_for(alice_http)
    h = {"Authorization": f"Bearer {key}"}
    m = "hi " + uuid.uuid4().hex
    fake_ollama.first_token_delay = 1.5
    r = requests.post(live.url + "/v1/chat/completions", json={"model": "light", "stream": True, "messages": [{"role": "user", "content": m + " s"}]}, headers=h, stream=True)
    t0 = time.monotonic()
    for line in r.iter_lines(decode_unicode=True):
        print(round(time.monotonic()-t0, 2), line[:120])
    fake_ollama.first_token_delay = 0
    fake_ollama.token_delay = 0.1
    r = requests.post(live.url + "/v1/chat/completions", json={"model": "light", "stream": True, "messages": [{"role": "user", "content": m + " c"}]}, headers=h, stream=True)
    jid = r.headers["X-Job-ID"]
    it = r.iter_lines(decode_unicode=True)
    for i, line in enumerate(it):
        print(line[:150])
        if i == 6:
            print(alice_http.delete(f"/api/jobs/{jid}").status_code)
    admin = make_admin(app, client, "admin@example.com")
    print(json.dumps(requests.get(live.url + "/api/metrics", headers={"Authorization": "Bearer " + admin.access_token}).json())[:3000])
    t = requests.get(live.url + "/metrics").text
    print("\n".join(l for l in t.splitlines() if "v1" in l or "jobs_finished" in l))
