"""The dashboard in a real browser (Debian's chromium driven by Playwright): a job trains while
the test watches its progress bar move on /ui and its curve redraw on the job page; with keys
required, the key form, the models page's label move and the dataset page."""

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.auth import service as keys
from app.auth.principal import Scope
from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import session_scope
from app.main import create_app
from tests.e2e.conftest import Server, free_port
from tests.factories import csv_bytes, job_request, register_version, seed_mlp, wait_for

pytestmark = pytest.mark.e2e
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "job-page.png"
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator["sync_api.Browser"]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


def _progress(page: "sync_api.Page", selector: str) -> int:
    return int(page.locator(selector).evaluate("bar => bar.value"))


def test_a_training_job_moves_its_progress_bar_and_redraws_its_curve(
    server: Server, browser: "sync_api.Browser", tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    page.goto(f"{server.url}/ui")
    page.wait_for_selector("body[data-live]")  # the table loaded, the event stream is open
    page.evaluate("window.sameDocument = true")  # gone if the page reloaded
    with httpx.Client(base_url=server.url, timeout=120) as client:
        upload = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=12000, seed=41))})
        # Batches of 4 at Keras's defaults: each epoch takes about a second here, so the pages see
        # them arrive (auto fuses its step groups and ran all ten before the job page looked twice).
        fit = {"epochs": 10, "batch_size": 4, "performance": "off"}
        request = job_request(upload.json()["id"], name="dashboard-watch", fit=fit)
        job_id = client.post("/v1/jobs", json=request).json()["id"]
    row = f'tr[data-job-id="{job_id}"]'

    page.wait_for_selector(row, timeout=WAIT_MS)  # a new job appears by itself
    start = _progress(page, f"{row} progress")
    page.wait_for_function(
        "([row, start]) => document.querySelector(row + ' progress').value > start", arg=[row, start], timeout=WAIT_MS
    )
    assert page.evaluate("window.sameDocument") is True  # moved live, by the event stream
    assert page.locator(f"{row} .status").inner_text() == "running"

    page.click(f"{row} a")
    page.wait_for_url(f"**/ui/jobs/{job_id}")
    page.wait_for_function("document.getElementById('curves').src.startsWith('blob:')", timeout=WAIT_MS)
    first = (_progress(page, "#job-progress"), page.locator("#curves").get_attribute("src"))
    page.wait_for_function(
        "([epoch, src]) => document.getElementById('job-progress').value > epoch"
        " && document.getElementById('curves').src !== src",
        arg=list(first),
        timeout=WAIT_MS,
    )
    page.wait_for_function("document.getElementById('job-status').textContent === 'succeeded'", timeout=WAIT_MS)

    assert _progress(page, "#job-progress") == 10
    assert page.locator("#metrics tbody tr").count() == 10
    assert "loss" in page.locator("#metrics thead").inner_text()
    assert page.locator("#job-model a").inner_text().startswith("dashboard-watch v")  # the version it registered
    assert page.locator("#history tbody tr").count() >= 3  # queued, running, succeeded
    page.wait_for_function("document.getElementById('curves').naturalWidth > 0")
    shot = tmp_path / "job-page.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("TRAINYARD_UPDATE_SCREENSHOT"):  # refreshes the README's picture
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    page.close()


@contextmanager
def serving_with_keys(home: Path) -> Iterator[tuple[str, str, str]]:
    """The app with keys required, no worker, on uvicorn in a thread of this process (a real HTTP
    server; no second process to start): project alpha holds model `tiny` (two versions,
    `production` → 1) and a dataset. Yields the URL, a read+deploy key, the dataset id."""
    settings = Settings(home=home, auth="on", embedded_worker=False, access_log=False)
    upgrade_to_head(settings)
    for seed in (1, 2):
        model = seed_mlp(features=4, classes=3, hidden=8, seed=seed)
        register_version(settings, "tiny", model, onnx=False, project="alpha")
    with session_scope(settings.sqlalchemy_url) as session:
        key = keys.create_key(session, "alpha", [Scope.READ, Scope.DEPLOY])[1]
        train = keys.create_key(session, "alpha", [Scope.TRAIN, Scope.DEPLOY])[1]
    port = free_port()
    app = create_app(settings, listen_hosts=["127.0.0.1"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.started, timeout=60, interval=0.05, what="uvicorn to start")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {train}"}, timeout=60) as client:
            client.put("/v1/models/tiny/labels/production", json={"version": 1}).raise_for_status()
            upload = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=40, seed=42))})
            upload.raise_for_status()
        yield url, key, upload.json()["id"]
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_with_keys_required_the_page_asks_for_one_moves_a_label_and_shows_a_dataset(
    browser: "sync_api.Browser", tmp_path: Path
) -> None:
    with serving_with_keys(tmp_path / "home") as (url, key, dataset_id):
        page = browser.new_page()

        page.goto(f"{url}/ui")
        page.wait_for_selector("#key-form:not([hidden])")
        assert "needs an API key" in page.locator("#notice").inner_text()
        page.fill("#key-input", key)
        page.click("#key-form button")
        page.wait_for_selector("#jobs tbody tr[data-job-id]")  # the jobs that trained tiny

        page.goto(f"{url}/ui/models")  # the key stays for the tab (sessionStorage)
        page.wait_for_selector('[data-model="tiny"] [data-label="production"]')
        assert page.locator('[data-label="production"]').inner_text() == "production → v1"
        page.select_option('[data-model="tiny"] select[name="version"]', "2")
        page.click('[data-model="tiny"] form.move-label button')
        page.wait_for_function(
            "document.querySelector('[data-label=\"production\"]').textContent === 'production → v2'",
            timeout=WAIT_MS,
        )
        label = httpx.get(f"{url}/v1/models/tiny/labels/production", headers={"Authorization": f"Bearer {key}"})
        assert label.json()["model_version_status"][0]["version"] == "2"

        page.goto(f"{url}/ui/datasets/{dataset_id}")
        page.wait_for_selector("#schema")
        assert page.locator("#preview tbody tr").count() == 20
        assert page.locator("#stats tbody tr").count() == 4
        assert "classification" in page.locator("#dataset").inner_text()

        page.evaluate("sessionStorage.clear()")
        page.goto(f"{url}/ui/datasets/{dataset_id}")
        page.wait_for_selector("#key-form:not([hidden])")  # no key: no data
        assert page.locator("#schema").count() == 0
        page.close()
