"""The HTML pages in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Needs /usr/bin/chromium (`apt-get install -y chromium`); skipped without it, except under
CI=true, where that is a failure. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import SMALL_CONFIG, wait_for

CHROMIUM = Path(os.environ.get("RNTK_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


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


def test_pages_in_chromium(browser, service_factory, iris_zip, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    service = service_factory(api_keys="alice-key-123,bob-key-456")
    service.start_server()
    alice = service.client("alice-key-123")
    response = alice.post("/jobs", files={"file": ("iris.zip", iris_zip.read_bytes())},
                          data={"config": __import__("json").dumps(SMALL_CONFIG)})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    job = wait_for(alice, job_id, {"succeeded", "failed", "cancelled"})
    assert job["state"] == "succeeded", (job, service.log_tail())
    rnn = f"{100 * job['summary']['RNN']['test_accuracy']:.1f}%"

    # over plain HTTP: the key is required, also for the report the iframe loads
    anonymous = service.client()
    assert anonymous.get("/").status_code == 401 and 'name="key"' in anonymous.get("/").text
    assert anonymous.get("/?key=alice-key-12").status_code == 401
    assert anonymous.get(f"/jobs/{job_id}/page/report.html").status_code == 401
    assert anonymous.get(f"/jobs/{job_id}/page/report.html", headers={"Cookie": "rntk_key=wrong"}).status_code == 401
    assert alice.get("/").status_code == 200 and job_id in alice.get("/").text  # the header works too
    assert anonymous.get("/jobs", headers={"Cookie": "rntk_key=alice-key-123"}).status_code == 401  # API: header only

    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        page.goto(f"{service.base}/")
        expect(page.locator("form input[name=key]")).to_be_visible()
        page.fill("input[name=key]", "alice-key-123")
        page.click("button[type=submit]")  # ?key=... sets the cookie, then a redirect drops it
        page.wait_for_url(f"{service.base}/")
        assert "key=" not in page.url
        row = page.locator(f"tr[data-job='{job_id}']")
        expect(row.locator(".job-state")).to_have_text("succeeded")
        expect(row.locator(".summary")).to_contain_text(f"RNN {rnn}")
        expect(row.locator(".summary")).to_contain_text("RBF")
        assert page.locator("meta[http-equiv=refresh]").count() == 1

        row.locator("a").click()
        page.wait_for_url(f"{service.base}/jobs/{job_id}/page")
        expect(page.locator("body")).to_contain_text("succeeded")
        report = page.frame_locator("iframe#report")
        plot = report.locator("svg#accuracy-plot")
        expect(plot).to_be_visible()
        plot.scroll_into_view_if_needed()
        box = plot.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 40, box
        expect(report.locator("body")).to_contain_text("RNN")
        shot = tmp_path / "job-page.png"
        page.screenshot(path=str(shot), full_page=True)
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, len(data)

        # another key in another browser: none of alice's jobs, and her job page is 404
        other = browser.new_context()
        try:
            bob = other.new_page()
            bob.goto(f"{service.base}/?key=bob-key-456")
            expect(bob.locator("body")).to_contain_text("No jobs yet")
            response = bob.goto(f"{service.base}/jobs/{job_id}/page")
            assert response is not None and response.status == 404
            response = bob.goto(f"{service.base}/jobs/{job_id}/page/report.html")
            assert response is not None and response.status == 404
        finally:
            other.close()
    finally:
        context.close()
