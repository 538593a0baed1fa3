"""The dashboard's routes over HTTP: open page shells and static files, fragments under the read
scope and scoped to the key's project, keyset pages of the jobs table."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from app.auth import service as keys
from app.auth.principal import Scope
from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import session_scope
from app.main import create_app
from app.models import JobStatus
from tests.factories import csv_bytes, job_row, register_version, seed_mlp


@dataclass
class Dashboard:
    client: TestClient
    settings: Settings
    alpha: dict[str, str]  # read key of project alpha
    beta: dict[str, str]
    dataset_id: str
    job_ids: list[str]  # alpha's jobs, oldest first


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    settings = Settings(home=tmp_path_factory.mktemp("ui"), auth="on", submit_rate_per_key=0)
    upgrade_to_head(settings)
    register_version(settings, "alpha-model", seed_mlp(features=4, classes=3, hidden=8), onnx=False, project="alpha")
    with session_scope(settings.sqlalchemy_url) as session:
        alpha = {"Authorization": f"Bearer {keys.create_key(session, 'alpha', [Scope.READ])[1]}"}
        beta = {"Authorization": f"Bearer {keys.create_key(session, 'beta', [Scope.READ])[1]}"}
        train = {"Authorization": f"Bearer {keys.create_key(session, 'alpha', [Scope.TRAIN])[1]}"}
        # 120 of alpha's jobs straight into the table (the fragment pages through them, 50 a page).
        rows = [
            job_row(name=f"job-{i}", project="alpha", status=JobStatus.RUNNING, epoch=i % 5, epochs=5)
            for i in range(120)
        ]
        session.add_all(rows)
        session.commit()
        job_ids = [row.id for row in rows]
    with TestClient(create_app(settings, listen_hosts=["0.0.0.0"]), base_url="http://127.0.0.1") as client:
        upload = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=32, seed=7))}, headers=train)
        assert upload.status_code == 201, upload.text
        yield Dashboard(client, settings, alpha, beta, upload.json()["id"], job_ids)


def test_the_page_shells_and_static_files_need_no_key_and_hold_no_data(dashboard: Dashboard) -> None:
    client = dashboard.client

    root = client.get("/", follow_redirects=False)
    page = client.get("/ui")
    script = client.get("/ui/static/app.js")
    style = client.get("/ui/static/style.css")

    assert root.status_code == 307 and root.headers["location"] == "/ui"
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/ui/static/app.js"' in page.text and "job-1" not in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert style.status_code == 200 and "https://" not in style.text
    assert client.get("/ui/static/nothing.js").status_code == 404
    assert client.get("/ui/static/..%2Fapp.py").status_code in {404, 422}


def test_fragments_need_a_key_and_show_only_its_project(dashboard: Dashboard) -> None:
    client = dashboard.client
    job_id = dashboard.job_ids[0]

    assert client.get("/ui/fragments/jobs").status_code == 401
    assert client.get(f"/ui/fragments/jobs/{job_id}", headers=dashboard.beta).status_code == 404
    assert client.get(f"/ui/fragments/datasets/{dashboard.dataset_id}", headers=dashboard.beta).status_code == 404
    assert "job-" not in client.get("/ui/fragments/jobs", headers=dashboard.beta).text
    assert "alpha-model" not in client.get("/ui/fragments/models", headers=dashboard.beta).text
    assert "alpha-model" in client.get("/ui/fragments/models", headers=dashboard.alpha).text


def test_the_jobs_table_pages_with_a_cursor_and_filters(dashboard: Dashboard) -> None:
    client = dashboard.client
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params = {"cursor": cursor} if cursor else {}
        response = client.get("/ui/fragments/jobs", params=params, headers=dashboard.alpha)
        assert response.status_code == 200
        seen += [line.split('"')[1] for line in response.text.splitlines() if "data-job-id=" in line]
        cursor = response.headers.get("Next-Cursor")
        if cursor is None:
            break

    named = client.get("/ui/fragments/jobs", params={"name": "job-7"}, headers=dashboard.alpha)
    queued = client.get("/ui/fragments/jobs", params={"status": "queued"}, headers=dashboard.alpha)

    # every job once, over three pages (and the job that trained alpha-model)
    assert len(seen) == len(set(seen)) and set(dashboard.job_ids) <= set(seen)
    assert named.text.count("data-job-id=") == 1 and 'max="5"' in named.text
    assert "No jobs." in queued.text
    assert client.get("/ui/fragments/jobs", params={"cursor": "nope"}, headers=dashboard.alpha).status_code == 400
    bad = client.get("/ui/fragments/jobs", params={"status": "sleeping"}, headers=dashboard.alpha)
    assert bad.status_code == 422 and "status" in bad.text


def test_job_and_dataset_fragments_render_their_parts(dashboard: Dashboard) -> None:
    client = dashboard.client

    job = client.get(f"/ui/fragments/jobs/{dashboard.job_ids[3]}", headers=dashboard.alpha)
    dataset = client.get(f"/ui/fragments/datasets/{dashboard.dataset_id}", headers=dashboard.alpha)

    assert job.status_code == 200 and 'id="job-progress" value="3" max="5"' in job.text
    assert 'id="spec"' in job.text and 'id="history"' in job.text
    assert dataset.status_code == 200, dataset.text
    assert 'id="schema"' in dataset.text and dataset.text.count("<tr>") >= 20 + 4  # 20 preview rows, 4 feature stats
    assert client.get("/ui/fragments/jobs/nope", headers=dashboard.alpha).status_code == 404
