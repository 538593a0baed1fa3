"""/v1/datasets over HTTP: upload, limits, errors, listing, deletion."""

from pathlib import Path

from fastapi.testclient import TestClient

from app.config import Settings
from tests.factories import classification_arrays, csv_bytes, npz_bytes


def leftovers(settings: Settings) -> list[Path]:
    incoming = settings.datasets_dir / ".incoming"
    return list(incoming.iterdir()) if incoming.exists() else []


def test_a_csv_upload_returns_the_dataset_with_its_schema(client: TestClient) -> None:
    response = client.post("/v1/datasets", files={"file": ("iris.csv", csv_bytes(rows=30))}, data={"target": "label"})
    assert response.status_code == 201
    body = response.json()
    assert body["format"] == "csv" and body["n_rows"] == 30
    assert body["features"]["shape"] == [4] and body["target"]["classes"] == [0, 1, 2]
    assert client.get(f"/v1/datasets/{body['id']}").json() == body


def test_an_npz_upload_keeps_the_array_shape(client: TestClient) -> None:
    x, y = classification_arrays(rows=10)
    response = client.post("/v1/datasets", files={"file": ("d.npz", npz_bytes(x=x.reshape(10, 2, 2), y=y))})
    assert response.status_code == 201
    assert response.json()["features"]["shape"] == [2, 2]


def test_an_unparseable_csv_is_a_422_naming_the_line_and_leaves_nothing(client: TestClient, settings: Settings) -> None:
    response = client.post("/v1/datasets", files={"file": ("d.csv", b"a,b,label\n1,2,0\n1,2,3,4\n")})
    assert response.status_code == 422
    assert "line 3" in response.json()["error"]
    assert leftovers(settings) == []
    assert client.get("/v1/datasets").json()["items"] == []


def test_a_chunked_upload_over_the_limit_is_a_413_and_leaves_nothing(tmp_path: Path) -> None:
    from app.db.migrate import upgrade_to_head
    from app.main import create_app

    small = Settings(home=tmp_path / "small", max_upload_bytes=20_000)
    upgrade_to_head(small)
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n\r\n' + b"1,2\n" * 20_000

    def chunked():  # a generator body: no Content-Length, sent chunked
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    with TestClient(create_app(small)) as client:
        response = client.post(
            "/v1/datasets",
            content=chunked(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
    assert response.status_code == 413
    assert "limit of 20000 bytes" in response.json()["error"]
    assert leftovers(small) == []


def test_a_request_without_a_file_part_is_a_400(client: TestClient) -> None:
    response = client.post("/v1/datasets", data={"name": "nothing"}, files={"other": ("x", b"1")})
    assert response.status_code == 400
    assert "'file'" in response.json()["error"]


def test_listing_is_newest_first_and_paginates_with_a_cursor(client: TestClient) -> None:
    ids = [client.post("/v1/datasets", files={"file": (f"d{i}.csv", csv_bytes())}).json()["id"] for i in range(3)]
    first = client.get("/v1/datasets", params={"limit": 2}).json()
    second = client.get("/v1/datasets", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [d["id"] for d in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None


def test_a_garbage_cursor_is_a_400(client: TestClient) -> None:
    assert client.get("/v1/datasets", params={"cursor": "!!"}).status_code == 400


def test_deleting_removes_the_record_and_the_files(client: TestClient, settings: Settings, dataset_id: str) -> None:
    assert (settings.datasets_dir / dataset_id).is_dir()
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 404
    assert not (settings.datasets_dir / dataset_id).exists()


def test_a_dataset_with_a_queued_job_cannot_be_deleted(client: TestClient, dataset_id: str) -> None:
    from tests.factories import job_request

    assert client.post("/v1/jobs", json=job_request(dataset_id)).status_code == 202
    response = client.delete(f"/v1/datasets/{dataset_id}")
    assert response.status_code == 409
    assert "queued or running" in response.json()["error"]
