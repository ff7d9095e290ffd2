"""The HTML pages and the API docs in a real headless Chromium (Debian's `chromium`, via Playwright).

Needs /usr/bin/chromium (`apt-get install -y chromium`); skipped without it, except under
CI=true, where that is a failure. Playwright's own browser downloads are never used.

Every request the browser makes is checked to stay on the test server: the pages and
``/docs`` / ``/redoc`` must work offline. With ``RNTK_SCREENSHOTS=DIR`` the screenshots are
also saved there (``docs/screenshots/`` holds the committed ones).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from .conftest import LONGER_CONFIG, wait_for

CHROMIUM = Path(os.environ.get("RNTK_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Six families on a small grid: close accuracies on iris, about 10 s on 2 cores.
SIX_FAMILIES = {"families": ["RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RBF"],
                "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1], "C": [1, 100]}


def _need_browser():
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        problem, sync_playwright = f"the playwright package is missing ({exc})", None
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} under CI=true: the browser test needs `apt-get install -y chromium` "
                        f"and the test extras (pip install -e '.[test]')")
        pytest.skip(f"{problem}; install Debian's chromium (`apt-get install -y chromium`) to run the browser test")
    return sync_playwright


@pytest.fixture
def browser():
    sync_playwright = _need_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                              headless=True, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


def _offline_context(browser, base: str, **options):
    """A browser context that records (and refuses) every request leaving the test server."""
    context = browser.new_context(**options)
    context.set_default_timeout(30_000)
    context.outside = []  # type: ignore[attr-defined]

    def route(route) -> None:
        url = route.request.url
        if url.startswith(base) or url.startswith("data:"):
            route.continue_()
        else:
            context.outside.append(url)  # type: ignore[attr-defined]
            route.abort()

    context.route("**/*", route)
    return context


def _goto(page, url: str) -> None:
    """Open ``url``; a running job's page refreshes itself, which may abort one navigation."""
    from playwright.sync_api import Error

    for attempt in range(3):
        try:
            page.goto(url)
            return
        except Error:
            if attempt == 2:
                raise


def _shoot(target, tmp_path: Path, name: str, full_page: bool = False) -> None:
    """A PNG of a page (the viewport, or all of it) or of one element; kept with RNTK_SCREENSHOTS."""
    shot = tmp_path / f"{name}.png"
    options = {"full_page": full_page} if full_page else {}
    target.screenshot(path=str(shot), **options)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, len(data)
    keep = os.environ.get("RNTK_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


def test_pages_in_chromium(browser, service_factory, iris_zip, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    service = service_factory(api_keys="alice-key-123,bob-key-456")
    service.start_server()
    alice = service.client("alice-key-123")

    # over plain HTTP: the key is required, also for the report and the artifacts; a page
    # sends a browser to the login form, and a key in the address is ignored (no cookie)
    anonymous = service.client()
    first = anonymous.get("/?key=alice-key-123")
    assert first.status_code == 303 and first.headers["location"] == "/page/login?next=%2F"
    assert "set-cookie" not in first.headers
    assert 'name="key"' in anonymous.get(first.headers["location"]).text
    assert anonymous.post("/page/submit", files={"file": ("iris.zip", b"x")}).status_code == 401
    assert alice.get("/").status_code == 200  # the header works too
    assert anonymous.get("/jobs", headers={"Cookie": "rntk_key=alice-key-123"}).status_code == 401  # API: header only

    context = _offline_context(browser, service.base, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{service.base}/")
        page.wait_for_url(f"{service.base}/page/login?*")
        expect(page.locator("form input[name=key]")).to_be_visible()
        page.fill("input[name=key]", "alice-key-123")
        page.click("#login-button")  # POST /page/login sets the session cookie, then back to /
        page.wait_for_url(f"{service.base}/")
        expect(page.locator("body")).to_contain_text("No jobs yet")
        expect(page.locator("#logout")).to_be_visible()

        # a bad config comes back to the form with the reason, nothing is submitted
        page.set_input_files("input[name=file]", str(iris_zip))
        page.fill("textarea[name=config]", '{"families": ["NOPE"]}')
        page.click("#submit")
        expect(page.locator("#form-error")).to_contain_text("NOPE")
        assert alice.get("/jobs").json() == []

        # submit the long job through the form, then cancel it with the button
        page.set_input_files("input[name=file]", str(iris_zip))
        page.fill("textarea[name=config]", json.dumps(LONGER_CONFIG))
        page.click("#submit")
        page.wait_for_url(f"{service.base}/jobs/*/page")
        long_id = page.url.rsplit("/", 2)[-2]
        wait_for(alice, long_id, {"running"})
        deadline = time.monotonic() + 60  # past loading: the overall bar has moved
        while alice.get(f"/jobs/{long_id}").json()["progress"]["overall"] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        _goto(page, f"{service.base}/jobs/{long_id}/page")
        expect(page.locator("#facts")).to_contain_text("iris")  # the dataset's name
        expect(page.locator("#facts .progress")).to_contain_text("%")
        _shoot(page, tmp_path, "job-running")
        page.click("#cancel")
        page.wait_for_url(f"{service.base}/jobs/{long_id}/page")
        expect(page.locator(".cancel-requested").or_(page.locator(".state.cancelled"))).to_be_visible()
        assert wait_for(alice, long_id, {"cancelled", "succeeded", "failed"})["state"] == "cancelled"
        _goto(page, f"{service.base}/jobs/{long_id}/page")
        expect(page.locator("#facts .job-state")).to_contain_text("cancelled")
        assert page.locator("#cancel").count() == 0

        # six families through the form; the report is inline (no iframe), artifacts are links
        page.goto(f"{service.base}/")
        page.set_input_files("input[name=file]", str(iris_zip))
        page.fill("textarea[name=config]", json.dumps(SIX_FAMILIES))
        page.click("#submit")
        page.wait_for_url(f"{service.base}/jobs/*/page")
        job_id = page.url.rsplit("/", 2)[-2]
        job = wait_for(alice, job_id, {"succeeded", "failed", "cancelled"})
        assert job["state"] == "succeeded", (job, service.log_tail())
        assert job["dataset_name"] == "iris"
        _goto(page, f"{service.base}/jobs/{job_id}/page")
        assert page.locator("iframe").count() == 0
        plot = page.locator("#report figure#accuracy-plot svg")
        expect(plot).to_be_visible()
        box = plot.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100, box
        for family in SIX_FAMILIES["families"]:
            expect(page.locator(f"#report tr[data-family='{family}']")).to_be_visible()
        link = page.locator("ul.artifacts a", has_text="report.json")
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / "report.json"
        download.value.save_as(saved)
        assert json.loads(saved.read_text())["families"].keys() == set(SIX_FAMILIES["families"])
        _shoot(page, tmp_path, "job-finished")
        _shoot(page.locator("#report #families"), tmp_path, "report-families")
        _shoot(page.locator("#report #accuracy"), tmp_path, "report-accuracy")
        _shoot(page.locator("#report #validation figure").last, tmp_path, "report-heatmap")

        page.goto(f"{service.base}/")
        row = page.locator(f"tr[data-job='{job_id}']")
        expect(row.locator(".dataset")).to_have_text("iris")
        expect(row.locator(".families")).to_contain_text("BI-RNN-AVG")
        expect(row.locator(".job-state")).to_have_text("succeeded")
        rnn = f"{100 * job['summary']['RNN']['test_accuracy']:.1f}%"
        expect(row.locator(".summary")).to_contain_text(f"RNN {rnn}")
        expect(page.locator(f"tr[data-job='{long_id}'] .job-state")).to_have_text("cancelled")
        assert page.locator("meta[http-equiv=refresh]").count() == 1
        _shoot(page, tmp_path, "jobs")

        # compare: tick both jobs; the finished one has its accuracies ± std, the cancelled none
        page.check(f"tr[data-job='{job_id}'] input[name=job]")
        page.check(f"tr[data-job='{long_id}'] input[name=job]")
        page.click("#compare")
        page.wait_for_url(f"{service.base}/compare?*")
        rnn_row = page.locator("#compare tr[data-family='RNN'] td")
        expect(rnn_row).to_have_count(2)
        expect(rnn_row.nth(0)).to_contain_text(rnn + " ± ")
        expect(rnn_row.nth(1)).to_have_text("-")
        # and the config fields the two jobs differ in (LONGER_CONFIG's grid is larger)
        sigma_u = page.locator("#config-differences tr[data-field='sigma_u'] td")
        expect(sigma_u).to_have_count(2)
        expect(sigma_u.nth(0)).to_have_text("[0.5]")
        expect(sigma_u.nth(1)).to_have_text("[0.25,0.5,1.0,1.5]")
        assert page.locator("#config-differences tr[data-field='families']").count() == 0  # the same in both
        _shoot(page, tmp_path, "compare")
        page.goto(f"{service.base}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("rntk")
        _shoot(page, tmp_path, "api-docs")

        # the API docs render from local files
        expect(page.locator(".opblock-summary-path[data-path='/jobs']").first).to_be_visible()
        page.goto(f"{service.base}/redoc")
        expect(page.locator("h1")).to_contain_text("rntk")
        expect(page.locator("body")).to_contain_text("Submit an evaluation job")
        assert context.outside == [], context.outside  # type: ignore[attr-defined]

        # another key in another browser: none of alice's jobs, and her pages are 404
        other = browser.new_context()
        try:
            bob = other.new_page()
            bob.goto(f"{service.base}/page/login")
            bob.fill("input[name=key]", "bob-key-456")
            bob.click("#login-button")
            bob.wait_for_url(f"{service.base}/")
            expect(bob.locator("body")).to_contain_text("No jobs yet")
            bobs_form = bob.locator("form.submit").get_attribute("action")
            for path in (f"/jobs/{job_id}/page", f"/jobs/{job_id}/page/report.html",
                         f"/jobs/{job_id}/page/artifacts/report.json"):
                response = bob.goto(f"{service.base}{path}")
                assert response is not None and response.status == 404, path
            token = bobs_form.split("csrf=", 1)[1]
            response = bob.request.post(f"{service.base}/jobs/{job_id}/page/cancel?csrf={token}")
            assert response.status == 404
            assert bob.request.post(f"{service.base}/jobs/{job_id}/page/cancel").status == 403  # no token
        finally:
            other.close()
    finally:
        context.close()
