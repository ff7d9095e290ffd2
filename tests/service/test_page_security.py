"""Cross-site requests against the pages and the API (issue 17, item 2).

- CSRF: every form that changes something (submit, cancel, login, logout) needs its token, and
  a request that a browser says came from another origin is 403, also from another port of the
  same host (the same *site*, so SameSite=Strict cookies go along).
- Host: a Host header the service was not configured for is 400 (DNS rebinding).
- Login: a POST form starts a server-side session; the cookie holds its random id, never the
  key, expires, and logout ends it on the server. No GET sets a cookie from ``?key=``.

The first tests drive the app in-process (TestClient); the last ones drive a real ``rntk
serve`` in headless Chromium, with an attacker's page served from another port.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import re
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.sessions import Sessions
from worker.settings import Settings

from .conftest import LONGER_CONFIG, SMALL_CONFIG, free_port, wait_for
from .test_pages import CHROMIUM, CHROMIUM_ARGS, _need_browser, browser  # noqa: F401 (a fixture)

KEYS = "alice-key-123,bob-key-456"
HERE = "http://127.0.0.1:8231"  # the TestClient's address: its Host header and same-origin Origin
EVIL = "http://127.0.0.1:9999"  # another port of the same host: the same site, another origin


def _client(tmp_path: Path, **settings) -> TestClient:
    app = create_app(Settings(data_dir=str(tmp_path / "data"), compile_cache_mb=0, **settings), sweep=False)
    return TestClient(app, base_url=HERE)


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path, api_keys=KEYS) as client:
        yield client


@pytest.fixture
def keyless(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as client:
        yield client


def _action(page: str, path: str) -> str:
    """The action of the page's form that posts to ``path`` (with its ``?csrf=``)."""
    actions = [html.unescape(a) for a in re.findall(r'<form[^>]*action="([^"]*)"', page)]
    found = [a for a in actions if a.split("?")[0] == path]
    assert found, (path, actions)
    return found[0]


def _token(action: str) -> str:
    return re.search(r"[?&]csrf=([0-9a-f]+)", action).group(1)


def _login(client: TestClient, key: str) -> httpx.Response:
    form = client.get("/page/login")
    assert form.status_code == 200
    return client.post(_action(form.text, "/page/login"), data={"key": key}, headers={"Origin": HERE},
                       follow_redirects=False)


def _upload(iris_zip: Path, config: dict) -> dict:
    return {"files": {"file": ("iris.zip", iris_zip.read_bytes())}, "data": {"config": json.dumps(config)}}


def _jobs(client: TestClient, key: str | None = None) -> list[dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = client.get("/jobs", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------------------------- Host


def test_host_allow_list(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        refused = client.get("/jobs", headers={"Host": "attacker.example:8232"})
        assert refused.status_code == 400
        assert "attacker.example:8232" in refused.json()["detail"] and "RNTK_ALLOWED_HOSTS" in refused.json()["detail"]
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400  # the pages too
        assert client.post("/page/submit", headers={"Host": "127.0.0.1.attacker.example"}).status_code == 400
        for host in ("127.0.0.1:8232", "localhost:8232", "LOCALHOST", "[::1]:8232", "localhost."):
            assert client.get("/jobs", headers={"Host": host}).status_code == 200, host
    # the address the connection arrived at (TestClient's server is "testserver")
    with TestClient(create_app(Settings(data_dir=str(tmp_path / "data")), sweep=False)) as client:
        assert client.get("/jobs").status_code == 200
        assert client.get("/jobs", headers={"Host": "rntk.example.org"}).status_code == 400
    with _client(tmp_path, allowed_hosts="rntk.example.org, *.lab.example") as client:
        for host, status in (("rntk.example.org", 200), ("rntk.example.org:443", 200), ("gpu1.lab.example", 200),
                             ("lab.example", 400), ("example.org", 400), ("127.0.0.1:8231", 200)):
            assert client.get("/jobs", headers={"Host": host}).status_code == status, host
    with _client(tmp_path, allowed_hosts="*") as client:
        assert client.get("/jobs", headers={"Host": "anything.example"}).status_code == 200


# ---------------------------------------------------------------------------------- CSRF


def test_forms_without_keys_need_same_origin_and_token(keyless: TestClient, iris_zip: Path) -> None:
    """No keys: no cookie to ride, yet any site could post; the Origin check and the token stop it."""
    page = keyless.get("/")
    assert page.status_code == 200 and 'id="logout"' not in page.text  # no session, no logout button
    submit = _action(page.text, "/page/submit")
    for headers, url, reason in (({"Origin": EVIL}, submit, "cross-origin"),
                                 ({"Origin": "null"}, submit, "cross-origin"),
                                 ({"Referer": f"{EVIL}/attack.html"}, submit, "cross-origin"),
                                 ({"Origin": HERE}, "/page/submit", "security token"),
                                 ({"Origin": HERE}, "/page/submit?csrf=" + "0" * 64, "security token"),
                                 ({}, "/page/submit", "security token")):
        refused = keyless.post(url, headers=headers, **_upload(iris_zip, SMALL_CONFIG), follow_redirects=False)
        assert refused.status_code == 403 and reason in refused.text, (headers, url, refused.text)
    # the API's simple (no-preflight) multipart POSTs: a no-cors fetch from any site
    for path in ("/jobs", "/datasets"):
        refused = keyless.post(path, headers={"Origin": EVIL}, **_upload(iris_zip, SMALL_CONFIG))
        assert refused.status_code == 403 and "cross-origin" in refused.json()["detail"]
    assert _jobs(keyless) == []

    done = keyless.post(submit, headers={"Origin": HERE, "Referer": f"{HERE}/"},
                        **_upload(iris_zip, LONGER_CONFIG), follow_redirects=False)
    assert done.status_code == 303, done.text
    job_id = done.headers["location"].split("/")[2]
    assert [job["id"] for job in _jobs(keyless)] == [job_id]
    assert keyless.post(submit, **_upload(iris_zip, SMALL_CONFIG), follow_redirects=False).status_code == 303

    cancel = _action(keyless.get(f"/jobs/{job_id}/page").text, f"/jobs/{job_id}/page/cancel")
    for headers, url in (({"Origin": EVIL}, cancel), ({"Referer": f"{EVIL}/"}, cancel),
                         ({"Origin": HERE}, f"/jobs/{job_id}/page/cancel"),
                         ({"Origin": HERE}, f"/jobs/{job_id}/page/cancel?csrf=" + "f" * 64)):
        assert keyless.post(url, headers=headers, follow_redirects=False).status_code == 403, (headers, url)
        assert keyless.get(f"/jobs/{job_id}").json()["state"] == "queued"  # no worker here: it waits
    assert keyless.post(cancel, headers={"Origin": HERE}, follow_redirects=False).status_code == 303
    assert keyless.get(f"/jobs/{job_id}").json()["state"] == "cancelled"


def test_forms_with_keys_need_the_sessions_token(keyed: TestClient, iris_zip: Path, tmp_path: Path) -> None:
    assert _login(keyed, "alice-key-123").status_code == 303
    page = keyed.get("/")
    assert page.status_code == 200 and 'id="logout"' in page.text
    submit = _action(page.text, "/page/submit")
    # the curl of the issue: the session cookie with a foreign Origin
    refused = keyed.post(submit, headers={"Origin": "https://evil.example"}, **_upload(iris_zip, {}))
    assert refused.status_code == 403 and "cross-origin" in refused.json()["detail"]
    assert keyed.post("/page/submit", headers={"Origin": HERE}, **_upload(iris_zip, {})).status_code == 403
    # another session's token (bob's, in another browser) is not alice's
    with TestClient(keyed.app, base_url=HERE) as other:
        assert _login(other, "bob-key-456").status_code == 303
        bobs = _token(_action(other.get("/").text, "/page/submit"))
    assert bobs != _token(submit)
    assert keyed.post(f"/page/submit?csrf={bobs}", headers={"Origin": HERE},
                      **_upload(iris_zip, {})).status_code == 403
    assert _jobs(keyed, "alice-key-123") == []

    done = keyed.post(submit, headers={"Origin": HERE}, **_upload(iris_zip, LONGER_CONFIG), follow_redirects=False)
    assert done.status_code == 303, done.text
    job_id = done.headers["location"].split("/")[2]
    cancel = _action(keyed.get(f"/jobs/{job_id}/page").text, f"/jobs/{job_id}/page/cancel")
    assert keyed.post(cancel, headers={"Origin": EVIL}).status_code == 403
    assert keyed.post(f"/jobs/{job_id}/page/cancel?csrf={bobs}").status_code == 403
    assert _jobs(keyed, "alice-key-123")[0]["state"] == "queued"
    assert keyed.post(cancel, headers={"Origin": HERE}, follow_redirects=False).status_code == 303
    assert _jobs(keyed, "alice-key-123")[0]["state"] == "cancelled"
    # the bearer header still works for a script, with a token bound to the owner
    with TestClient(keyed.app, base_url=HERE, headers={"Authorization": "Bearer alice-key-123"}) as scripted:
        scripted_submit = _action(scripted.get("/").text, "/page/submit")
        assert _token(scripted_submit) not in (_token(submit), bobs)
        assert scripted.post(scripted_submit, **_upload(iris_zip, {}), follow_redirects=False).status_code == 303
        assert scripted.post("/page/submit", **_upload(iris_zip, {})).status_code == 403


# ---------------------------------------------------------------------------------- login


def test_login_sets_a_session_not_the_key_and_logout_ends_it(keyed: TestClient, tmp_path: Path) -> None:
    login = _login(keyed, "alice-key-123")
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookies = {c.split("=", 1)[0]: c for c in login.headers.get_list("set-cookie")}
    session = cookies["rntk_session"]
    value = session.split(";")[0].split("=", 1)[1]
    assert "alice-key-123" not in value and len(value) >= 40
    assert "Max-Age=43200" in session and "expires=" in session.lower()
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/" in session
    stored = tmp_path / "data" / "sessions" / f"{hashlib.sha256(value.encode()).hexdigest()}.json"
    record = json.loads(stored.read_text())
    assert record["owner"] == hashlib.sha256(b"alice-key-123").hexdigest() and "alice-key-123" not in stored.read_text()
    assert abs(record["expires_at"] - time.time() - 12 * 3600) < 60
    assert stored.stat().st_mode & 0o077 == 0

    page = keyed.get("/")
    assert page.status_code == 200 and 'id="logout"' in page.text
    logout = _action(page.text, "/page/logout")
    assert keyed.post("/page/logout", headers={"Origin": HERE}).status_code == 403  # no token
    assert keyed.post(logout, headers={"Origin": EVIL}).status_code == 403
    assert stored.exists() and keyed.get("/", follow_redirects=False).status_code == 200
    out = keyed.post(logout, headers={"Origin": HERE}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/page/login"
    assert not stored.exists()
    # the old cookie value (a copy kept by an attacker, or a browser that ignored the deletion)
    keyed.cookies.clear()
    old = keyed.get("/", headers={"Cookie": f"rntk_session={value}"}, follow_redirects=False)
    assert old.status_code == 303 and old.headers["location"].startswith("/page/login")
    form = keyed.get("/", headers={"Cookie": f"rntk_session={value}"})
    assert form.url.path == "/page/login" and 'name="key"' in form.text and "expired or ended" in form.text


def test_get_with_a_key_never_sets_a_cookie(keyed: TestClient) -> None:
    for path in ("/?key=alice-key-123", "/compare?job=x&key=alice-key-123", "/page/submit?key=alice-key-123"):
        response = keyed.get(path, follow_redirects=False)
        assert response.status_code in (303, 405), (path, response.status_code)
        assert "set-cookie" not in response.headers, path
    response = keyed.get("/?key=alice-key-123", follow_redirects=False)
    assert response.headers["location"] == "/page/login?next=%2F"  # the key is dropped, not used
    assert not keyed.cookies
    # the old cookie, holding the raw key, is no credential either
    assert keyed.get("/", headers={"Cookie": "rntk_key=alice-key-123"}, follow_redirects=False).status_code == 303
    # a second login (another key) replaces the browser's session only through the form
    assert _login(keyed, "alice-key-123").status_code == 303
    first = keyed.cookies["rntk_session"]
    assert keyed.get("/?key=bob-key-456").url.path == "/" and keyed.cookies["rntk_session"] == first


def test_login_form_refuses_other_origins_and_missing_nonce(keyed: TestClient, tmp_path: Path) -> None:
    sessions = tmp_path / "data" / "sessions"
    form = keyed.get("/page/login?next=/compare%3Fjob%3Dx")
    action = _action(form.text, "/page/login")
    assert "next=%2Fcompare%3Fjob%3Dx" in action
    # login CSRF: another origin posts its own key into the victim's browser
    refused = keyed.post(action, data={"key": "bob-key-456"}, headers={"Origin": EVIL}, follow_redirects=False)
    assert refused.status_code == 403 and "rntk_session" not in refused.headers.get("set-cookie", "")
    # no Origin, but no nonce cookie (or the wrong token): the form is shown again, no session
    with TestClient(keyed.app, base_url=HERE) as fresh:
        refused = fresh.post(action, data={"key": "bob-key-456"}, follow_redirects=False)
        assert refused.status_code == 403 and 'name="key"' in refused.text and "expired" in refused.text
        assert "rntk_session" not in refused.headers.get("set-cookie", "")
    assert keyed.post("/page/login?csrf=" + "0" * 64, data={"key": "bob-key-456"}).status_code == 403
    wrong = keyed.post(action, data={"key": "alice-key-12"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not valid" in wrong.text and "rntk_session" not in str(wrong.headers)
    assert not list(sessions.glob("*.json"))
    done = keyed.post(action, data={"key": "alice-key-123"}, headers={"Origin": HERE}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/compare?job=x"
    assert len(list(sessions.glob("*.json"))) == 1
    # only local targets: no redirect to another site after the login
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        evil = _action(keyed.get("/page/login", params={"next": target}).text, "/page/login")
        response = keyed.post(evil, data={"key": "alice-key-123"}, follow_redirects=False)
        assert response.headers["location"] == "/", target
    assert len(list(sessions.glob("*.json"))) == 1  # each login ended the browser's previous session


def test_sessions_expire_and_end_with_their_key(tmp_path: Path) -> None:
    store = Sessions(tmp_path / "sessions")
    short = store.create("owner-a", 0.2)
    assert store.get(short.id) == short and store.get(short.id + "x") is None and store.get("x" * 500) is None
    time.sleep(0.3)
    assert store.get(short.id) is None and not list((tmp_path / "sessions").glob("*.json"))
    store.create("owner-a", 0.01)
    time.sleep(0.05)
    kept = store.create("owner-b", 60)  # creating prunes the expired one
    assert [p.name for p in (tmp_path / "sessions").glob("*.json")] == [
        f"{hashlib.sha256(kept.id.encode()).hexdigest()}.json"]
    assert Sessions(tmp_path / "sessions").token("x") == store.token("x")  # the secret is on disk, shared

    with _client(tmp_path, api_keys=KEYS) as client:
        assert _login(client, "bob-key-456").status_code == 303
        cookie = client.cookies["rntk_session"]
    with _client(tmp_path, api_keys="alice-key-123") as client:  # bob's key was removed
        response = client.get("/", headers={"Cookie": f"rntk_session={cookie}"}, follow_redirects=False)
        assert response.status_code == 303 and "reason=expired" in response.headers["location"]


# ---------------------------------------------------------------------------------- Chromium


class _Attacker:
    """A web server on another port of 127.0.0.1 (the same site as the service) serving ``files``."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _attack_page(service: str, iris_zip: Path, job_id: str | None) -> str:
    """Forms that submit themselves into hidden frames, and no-cors fetches, at ``service``."""
    config = json.dumps(SMALL_CONFIG)
    data = base64.b64encode(iris_zip.read_bytes()).decode()
    cancel = (f'<form id="cancel" method="post" target="f2" action="{service}/jobs/{job_id}/page/cancel"></form>'
              if job_id else "")
    return f"""<!doctype html><html><body>
<iframe name="f1"></iframe><iframe name="f2"></iframe><iframe name="f3"></iframe>
<form id="submit" method="post" target="f1" enctype="multipart/form-data" action="{service}/page/submit">
<input type="file" name="file" id="file"><input name="config" value='{config}'></form>
{cancel}
<form id="login" method="post" target="f3" action="{service}/page/login"><input name="key" value="bob-key-456"></form>
<script>
const bytes = Uint8Array.from(atob("{data}"), c => c.charCodeAt(0));
const zip = () => new File([bytes], "iris.zip", {{type: "application/zip"}});
const loaded = name => new Promise(done => document.querySelector(`iframe[name=${{name}}]`)
  .addEventListener("load", done, {{once: true}}));
const form = () => {{ const body = new FormData(); body.append("file", zip()); body.append("config", '{config}');
  return body; }};
(async () => {{
  const picked = new DataTransfer(); picked.items.add(zip());
  document.getElementById("file").files = picked.files;
  const waits = [loaded("f1"), loaded("f3")];
  document.getElementById("submit").submit();
  document.getElementById("login").submit();
  const cancel = document.getElementById("cancel");
  if (cancel) {{ waits.push(loaded("f2")); cancel.submit(); }}
  for (const path of ["/page/submit", "/jobs", "/datasets"]) {{
    await fetch("{service}" + path, {{method: "POST", mode: "no-cors", credentials: "include", body: form()}});
  }}
  await Promise.all(waits);
  document.title = "done";
}})().catch(error => {{ document.title = "error " + error; }});
</script></body></html>"""


def _run_attack(browser_context, attacker: _Attacker, folder: Path, page_html: str, service: str) -> list[tuple]:
    """Open the attacker's page in the victim's browser; the service's answers to it."""
    from playwright.sync_api import expect

    (folder / "attack.html").write_text(page_html)
    answers: list[tuple] = []
    browser_context.on("response", lambda r: answers.append((r.request.method, r.url, r.status))
                       if r.url.startswith(service) else None)
    page = browser_context.new_page()
    page.goto(f"{attacker.base}/attack.html")
    expect(page).to_have_title("done", timeout=30_000)
    page.close()
    return answers


def test_cross_site_pages_cannot_act_in_chromium(browser, service_factory, iris_zip,  # noqa: F811
                                                 tmp_path: Path) -> None:
    """Alice logs in through the form; a page on another port of the same host then tries to
    submit, cancel, and log her in as bob: nothing happens. Logout ends the session."""
    from playwright.sync_api import expect

    service = service_factory(api_keys=KEYS)
    service.start_server()
    alice = service.client("alice-key-123")
    folder = tmp_path / "attacker"
    folder.mkdir()
    attacker = _Attacker(folder)
    context = browser.new_context()
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        page.goto(f"{service.base}/?key=alice-key-123")  # ignored: the login form, no cookie
        page.wait_for_url(f"{service.base}/page/login?*")
        assert not [c for c in context.cookies() if c["name"] == "rntk_session"]
        page.fill("input[name=key]", "alice-key-123")
        page.click("#login-button")
        page.wait_for_url(f"{service.base}/")
        expect(page.locator("#logout")).to_be_visible()
        expect(page.locator("body")).to_contain_text("No jobs yet")
        session = next(c for c in context.cookies() if c["name"] == "rntk_session")
        assert "alice-key-123" not in session["value"] and session["httpOnly"] and session["expires"] > time.time()

        response = alice.post("/jobs", files={"file": ("iris.zip", iris_zip.read_bytes())},
                              data={"config": json.dumps(LONGER_CONFIG)})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]

        answers = _run_attack(context, attacker, folder, _attack_page(service.base, iris_zip, job_id), service.base)
        posts = [(url.removeprefix(service.base), status) for method, url, status in answers if method == "POST"]
        assert {path for path, _ in posts} >= {"/page/submit", f"/jobs/{job_id}/page/cancel", "/page/login", "/jobs",
                                              "/datasets"}, posts
        assert all(status == 403 for _, status in posts), posts
        assert [job["id"] for job in alice.get("/jobs").json()] == [job_id]
        assert alice.get(f"/jobs/{job_id}").json()["cancel_requested"] is False
        assert service.client("bob-key-456").get("/jobs").json() == []
        page.goto(f"{service.base}/")  # still alice: her job, not bob's empty list
        expect(page.locator(f"tr[data-job='{job_id}']")).to_be_visible()
        assert next(c for c in context.cookies() if c["name"] == "rntk_session")["value"] == session["value"]

        # her own cancel button (with its token) works
        page.goto(f"{service.base}/jobs/{job_id}/page")
        if page.locator("#cancel").count():
            page.click("#cancel")
            page.wait_for_url(f"{service.base}/jobs/{job_id}/page")
            assert wait_for(alice, job_id, {"cancelled", "succeeded"})["state"] in ("cancelled", "succeeded")

        page.click("#logout")
        page.wait_for_url(f"{service.base}/page/login")
        expect(page.locator("input[name=key]")).to_be_visible()
        assert not [c for c in context.cookies() if c["name"] == "rntk_session"]
        page.goto(f"{service.base}/")
        page.wait_for_url(f"{service.base}/page/login?*")
        old = httpx.get(f"{service.base}/", cookies={"rntk_session": session["value"]})
        assert old.status_code == 303 and old.headers["location"].startswith("/page/login")
    finally:
        context.close()
        attacker.close()


def test_cross_site_and_rebinding_in_chromium_without_keys(service_factory, iris_zip, tmp_path: Path) -> None:
    """Without keys (the ``make serve`` default): a page on another port cannot submit, and a DNS
    name that resolves to the service (``--host-resolver-rules``) gets 400, not the job list."""
    from playwright.sync_api import expect

    sync_playwright = _need_browser()
    service = service_factory()
    service.start_server()
    folder = tmp_path / "attacker"
    folder.mkdir()
    attacker = _Attacker(folder)
    rules = "--host-resolver-rules=MAP rebind.attacker.test 127.0.0.1"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, rules],
                                                  headless=True, timeout=60_000)
            try:
                context = chromium.new_context()
                context.set_default_timeout(30_000)
                answers = _run_attack(context, attacker, folder, _attack_page(service.base, iris_zip, None),
                                      service.base)
                posts = [(url.removeprefix(service.base), status) for method, url, status in answers
                         if method == "POST"]
                assert {path for path, _ in posts} >= {"/page/submit", "/jobs", "/datasets"}, posts
                assert all(status == 403 for _, status in posts), posts
                assert service.client().get("/jobs").json() == []

                page = context.new_page()
                port = service.port
                response = page.goto(f"http://rebind.attacker.test:{port}/jobs")
                assert response is not None and response.status == 400
                expect(page.locator("body")).to_contain_text("RNTK_ALLOWED_HOSTS")
                response = page.goto(f"http://127.0.0.1:{port}/jobs")
                assert response is not None and response.status == 200
                page.goto(f"http://127.0.0.1:{port}/")  # and its own form still works
                page.set_input_files("input[name=file]", str(iris_zip))
                page.fill("textarea[name=config]", json.dumps(SMALL_CONFIG))
                page.click("#submit")
                page.wait_for_url(f"http://127.0.0.1:{port}/jobs/*/page")
                assert len(service.client().get("/jobs").json()) == 1
            finally:
                chromium.close()
    finally:
        attacker.close()
