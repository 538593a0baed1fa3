"""/v1/datasets over HTTP: every format, limits, errors, dedupe, preview, stats, deletion."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import session_scope
from app.main import create_app
from app.models import Dataset
from tests.factories import (
    classification_arrays,
    csv_bytes,
    csv_from_columns,
    image_bytes,
    image_zip_bytes,
    jsonl_bytes,
    mixed_columns,
    npz_bytes,
    parquet_bytes,
    zip_bytes,
)

FULL = {"view": "full"}


def leftovers(settings: Settings) -> list[Path]:
    incoming = settings.datasets_dir / ".incoming"
    return list(incoming.iterdir()) if incoming.exists() else []


def test_a_csv_upload_returns_the_dataset_with_its_schema(client: TestClient) -> None:
    response = client.post(
        "/v1/datasets", params=FULL, files={"file": ("iris.csv", csv_bytes(rows=30))}, data={"target": "label"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["format"] == "csv" and body["n_rows"] == 30
    assert body["features"]["shape"] == [4] and body["target"]["classes"] == [0, 1, 2]
    assert client.get(f"/v1/datasets/{body['id']}", params=FULL).json() == body


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
    small = Settings(home=tmp_path / "small", max_upload_bytes=20_000)
    upgrade_to_head(small)
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n\r\n' + b"1,2\n" * 20_000

    def chunked():  # a generator body: no Content-Length, sent chunked
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    with TestClient(create_app(small), base_url="http://127.0.0.1") as client:
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
    ids = [client.post("/v1/datasets", files={"file": (f"d{i}.csv", csv_bytes(seed=i))}).json()["id"] for i in range(3)]
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


# --- formats -------------------------------------------------------------------------------------

FORMATS: dict[str, tuple[str, bytes, dict[str, str]]] = {
    "csv": ("pets.csv", csv_from_columns(mixed_columns()), {}),
    "parquet": ("pets.parquet", parquet_bytes(mixed_columns()), {}),
    "jsonl": ("pets.jsonl", jsonl_bytes(mixed_columns()), {}),
    "zip": ("pets.zip", image_zip_bytes(), {"image_size": "8,6", "color_mode": "grayscale"}),
}


def upload(client: TestClient, filename: str, data: bytes, **fields: str) -> Any:
    """An upload answered in full: these tests read the schema the parser found."""
    return client.post("/v1/datasets", params=FULL, files={"file": (filename, data)}, data=fields)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_tabular_formats_upload_with_text_features_as_categories(client: TestClient, fmt: str) -> None:
    response = upload(client, *FORMATS[fmt][:2])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["format"] == fmt and body["n_rows"] == 6
    assert body["features"]["columns"] == ["size", "colour"]
    assert body["features"]["column_types"][1]["vocabulary"] == ["blue", "green", "red", None]
    assert body["target"]["classes"] == ["cat", "dog"]


def test_a_zip_of_images_uploads_as_uint8_images_with_folder_classes(client: TestClient) -> None:
    filename, data, fields = FORMATS["zip"]
    response = upload(client, filename, data, **fields)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["features"]["shape"] == [8, 6, 1] and body["features"]["dtype"] == "uint8"
    assert body["target"]["classes"] == ["cat", "dog"] and body["n_rows"] == 5


def test_the_format_field_names_the_format_of_a_file_without_extension(
    client: TestClient,
) -> None:
    response = upload(client, "export", jsonl_bytes(mixed_columns()), format="jsonl")
    assert response.status_code == 201 and response.json()["format"] == "jsonl"


# --- dedupe --------------------------------------------------------------------------------------


def stored_dirs(settings: Settings) -> list[Path]:
    return [p for p in settings.datasets_dir.iterdir() if not p.name.startswith(".")]


def test_the_same_bytes_and_options_return_the_existing_dataset(client: TestClient, settings: Settings) -> None:
    first = upload(client, "a.csv", csv_bytes(), name="first")
    again = upload(client, "copy.csv", csv_bytes(), name="second")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(stored_dirs(settings)) == 1 and leftovers(settings) == []
    assert len(client.get("/v1/datasets").json()["items"]) == 1


def test_the_same_bytes_with_other_parse_options_are_another_dataset(client: TestClient) -> None:
    by_default = upload(client, "a.csv", csv_bytes())
    by_name = upload(client, "a.csv", csv_bytes(), target="label")
    assert (by_default.status_code, by_name.status_code) == (201, 201)
    assert by_default.json()["id"] != by_name.json()["id"]


# --- bad data: 4xx naming the place, nothing left behind ----------------------------------------

BAD_UPLOADS = [
    ("d.csv", b"a,b,label\n", {}, "the CSV has no data rows"),
    ("d.csv", b"a,label\n1,x\n2,x\n", {}, "target column 'label' has a single class ('x')"),
    ("d.csv", b"a,b,label\n1,\xff,0\n", {}, "line 2 is not valid UTF-8"),
    ("d.jsonl", b'{"a": 1, "y": 0}\n{"a": 2, "y": }\n', {}, "line 2 is not valid JSON"),
    ("d.parquet", b"PAR1 but not really", {}, "not a valid Parquet file"),
    (
        "d.zip",
        zip_bytes({"cat/a.png": image_bytes(), "dog/b.png": b"garbage"}),
        {},
        "image 'dog/b.png' cannot be decoded",
    ),
    (
        "d.zip",
        zip_bytes({"cat/a.png": image_bytes(), "../dog/b.png": image_bytes()}),
        {},
        "points outside the archive",
    ),
    ("d.zip", image_zip_bytes(), {"color_mode": "sepia"}, "form field 'color_mode' is 'sepia'"),
    ("d.xlsx", b"PK", {}, "unsupported format 'xlsx'"),
]


@pytest.mark.parametrize(("filename", "data", "fields", "message"), BAD_UPLOADS)
def test_bad_data_is_a_422_that_says_where_and_leaves_nothing(
    client: TestClient,
    settings: Settings,
    filename: str,
    data: bytes,
    fields: dict[str, str],
    message: str,
) -> None:
    response = upload(client, filename, data, **fields)
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert response.json()["error"].startswith(f"{filename}: ")
    assert leftovers(settings) == [] and stored_dirs(settings) == []


@pytest.fixture
def narrow_client(tmp_path: Path) -> Iterator[TestClient]:
    """An API whose limits are tiny: 3 columns, 2 categories per text column."""
    narrow = Settings(home=tmp_path / "narrow", max_columns=3, max_categories=2)
    upgrade_to_head(narrow)
    with TestClient(create_app(narrow), base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_more_columns_than_max_columns_is_a_422(narrow_client: TestClient) -> None:
    response = upload(narrow_client, "wide.csv", csv_bytes(rows=5, features=3))
    assert response.status_code == 422
    assert "4 columns, over the limit of 3 (TRAINYARD_MAX_COLUMNS)" in response.json()["error"]


def test_a_text_column_over_max_categories_is_a_422(narrow_client: TestClient) -> None:
    response = upload(narrow_client, "pets.csv", csv_from_columns(mixed_columns()))
    assert response.status_code == 422
    assert "column 'colour' has more than 2 distinct values" in response.json()["error"]


# --- preview and stats ---------------------------------------------------------------------------


def test_a_tabular_preview_shows_the_original_strings(client: TestClient) -> None:
    dataset = upload(client, *FORMATS["csv"][:2]).json()
    preview = client.get(f"/v1/datasets/{dataset['id']}/preview", params={"rows": 3}).json()
    assert preview["columns"] == ["size", "colour", "kind"]
    assert preview["rows"] == [[1.5, "red", "cat"], [2.0, "blue", "dog"], [3.25, None, "cat"]]
    assert preview["n_rows"] == 6 and preview["targets"] is None


def test_an_image_preview_shows_the_shape_and_the_first_classes(client: TestClient) -> None:
    filename, data, fields = FORMATS["zip"]
    dataset = upload(client, filename, data, **fields).json()
    preview = client.get(f"/v1/datasets/{dataset['id']}/preview").json()
    assert preview["shape"] == [8, 6, 1] and preview["rows"] is None
    assert preview["targets"] == ["cat", "cat", "cat", "dog", "dog"]


def test_an_npz_preview_shows_integer_labels(client: TestClient) -> None:
    x, y = classification_arrays(rows=10)
    dataset = upload(client, "d.npz", npz_bytes(x=x, y=y)).json()
    preview = client.get(f"/v1/datasets/{dataset['id']}/preview", params={"rows": 4}).json()
    assert preview["targets"] == y[:4].tolist() and preview["shape"] == [4]


@pytest.mark.parametrize("rows", [0, 1001])
def test_preview_rows_must_be_between_1_and_1000(client: TestClient, rows: int) -> None:
    dataset = upload(client, *FORMATS["csv"][:2]).json()
    response = client.get(f"/v1/datasets/{dataset['id']}/preview", params={"rows": rows})
    assert response.status_code == 422 and "rows" in response.json()["error"]


def test_preview_and_stats_of_an_unknown_dataset_are_404s(client: TestClient) -> None:
    assert client.get("/v1/datasets/nope/preview").status_code == 404
    assert client.get("/v1/datasets/nope/stats").status_code == 404


def test_stats_give_columns_and_the_class_histogram(client: TestClient) -> None:
    dataset = upload(client, *FORMATS["parquet"][:2]).json()
    stats = client.get(f"/v1/datasets/{dataset['id']}/stats").json()
    size, colour = stats["features"]
    assert (size["name"], size["min"], size["max"], size["missing"]) == ("size", 1.5, 6.0, 0)
    assert size["mean"] == pytest.approx(np.mean(mixed_columns()["size"]))
    assert (colour["kind"], colour["missing"], colour["counts"]) == ("categorical", 1, [2, 1, 2, 1])
    assert stats["target"] == {
        "kind": "classification",
        "histogram": {"cat": 4, "dog": 2},
        "columns": None,
    }


def test_stats_of_a_regression_target_give_its_range(client: TestClient) -> None:
    data = b"a,price\n1,10\n2,20.5\n3,30\n"
    dataset = upload(client, "prices.csv", data).json()
    target = client.get(f"/v1/datasets/{dataset['id']}/stats").json()["target"]
    assert target["kind"] == "regression" and target["histogram"] is None
    assert (target["columns"][0]["min"], target["columns"][0]["max"]) == (10.0, 30.0)


def test_stats_of_a_dataset_stored_before_stats_existed_are_computed_once(
    client: TestClient, settings: Settings
) -> None:
    dataset_id = upload(client, "a.csv", csv_bytes(rows=8)).json()["id"]
    with session_scope(settings.sqlalchemy_url) as session:
        legacy = session.get(Dataset, dataset_id)
        assert legacy is not None
        legacy.stats = None
    stats = client.get(f"/v1/datasets/{dataset_id}/stats").json()
    x, _ = classification_arrays(rows=8)
    assert [f["name"] for f in stats["features"]] == ["f0", "f1", "f2", "f3"]
    assert stats["features"][0]["max"] == pytest.approx(x[:, 0].max(), abs=1e-4)
    assert sum(stats["target"]["histogram"].values()) == 8
    with session_scope(settings.sqlalchemy_url) as session:
        stored = session.get(Dataset, dataset_id)
        assert stored is not None and stored.stats is not None


# --- what a CSV's reading guessed, said out loud -------------------------------------------------


def numbers_with_words(rows: int = 30, words: dict[int, str] | None = None) -> bytes:
    cells = [str(i * 1.5) for i in range(rows)]
    for row, word in (words or {}).items():
        cells[row] = word
    return csv_from_columns({"age": cells, "label": [i % 2 for i in range(rows)]})


def test_a_numeric_column_with_a_few_stray_words_is_a_422_naming_the_cells(client: TestClient) -> None:
    response = upload(client, "people.csv", numbers_with_words(words={2: "unknown", 17: "ten"}))
    assert response.status_code == 422
    error = response.json()["error"]
    assert "column 'age' holds numbers but 2 cell(s) are not: 'unknown' at data row 3 (line 4), " in error
    assert "'ten' at data row 18 (line 19)" in error and "text_columns=age" in error


def test_a_numeric_looking_column_is_kept_as_text_when_asked(client: TestClient) -> None:
    response = upload(client, "people.csv", numbers_with_words(words={2: "unknown"}), text_columns="age")
    assert response.status_code == 201, response.text
    assert response.json()["features"]["column_types"][0]["kind"] == "categorical"


def test_a_column_of_numbers_named_in_text_columns_is_text(client: TestClient) -> None:
    data = csv_from_columns({"zip": ["02134", "10001", "02134", "94105"], "label": [0, 1, 0, 1]})
    response = upload(client, "zips.csv", data, text_columns="zip")
    assert response.status_code == 201, response.text
    assert response.json()["features"]["column_types"][0]["vocabulary"] == ["02134", "10001", "94105"]
    assert (
        upload(client, "zips.csv", data, text_columns="zipcode")
        .json()["error"]
        .endswith("form field 'text_columns' names 'zipcode', which is not a column; columns are: zip, label")
    )


def test_a_genuinely_text_column_with_some_numbers_stays_text(client: TestClient) -> None:
    codes = ["A1", "B2", "C3", "7", "D5", "E6", "F7", "G8", "H9", "J1"]
    response = upload(client, "codes.csv", csv_from_columns({"code": codes, "label": [0, 1] * 5}))
    assert response.status_code == 201, response.text
    assert response.json()["features"]["column_types"][0]["kind"] == "categorical"


def test_a_pandas_index_column_is_dropped_with_a_warning(client: TestClient) -> None:
    data = b",height,label\n0,1.5,0\n1,2.5,1\n2,3.5,0\n3,4.5,1\n"
    response = upload(client, "frame.csv", data)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["features"]["columns"] == ["height"]
    assert any("dropped the first column ''" in warning for warning in body["warnings"])


def test_a_european_csv_reads_decimal_commas_as_numbers(client: TestClient) -> None:
    data = "größe;gewicht;label\n1,75;70,5;0\n1,62;55,25;1\n1,80;82,0;0\n".encode()
    response = upload(client, "messung.csv", data)
    assert response.status_code == 201, response.text
    body = response.json()
    assert [c["kind"] for c in body["features"]["column_types"]] == ["numeric", "numeric"]
    assert "delimiter ';' guessed from the first lines" in body["warnings"]
    assert any(warning.startswith("decimal comma guessed") for warning in body["warnings"])
    stats = client.get(f"/v1/datasets/{body['id']}/stats").json()
    assert stats["features"][0]["max"] == pytest.approx(1.80, abs=1e-6)


def test_the_decimal_mark_can_be_given_as_a_form_field(client: TestClient) -> None:
    data = b"a\tb\tlabel\n1,5\t2\t0\n2,5\t3\t1\n"
    response = upload(client, "tabs.txt", data, format="csv", decimal=",")
    assert response.status_code == 201, response.text
    assert response.json()["features"]["column_types"][0]["kind"] == "numeric"


@pytest.mark.parametrize("name", ["rows.tsv", "rows.tab"])
def test_tab_separated_files_are_read_by_their_extension(client: TestClient, name: str) -> None:
    response = upload(client, name, csv_bytes(rows=12, delimiter="\t"), target="label")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["format"] == "csv" and body["features"]["shape"] == [4]
    assert not any("delimiter" in warning for warning in body["warnings"])  # given, not guessed


def test_every_dataset_says_which_column_types_were_guessed(client: TestClient) -> None:
    data = csv_from_columns({"colour": ["red", "blue"] * 3, "size": [1, 2, 3, 4, 5, 6], "label": [0, 1] * 3})
    body = upload(client, "shirts.csv", data).json()
    assert body["warnings"] == ["column types guessed from the first rows; numbers: 'size', 'label'; text: 'colour'"]
