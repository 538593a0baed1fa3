"""The access-control matrix: every route by every kind of caller → the status API.md promises.

The routes come from the app's own route table and each one's rule from its dependencies
(app.auth.deps.ScopeRule / OPEN), so a new route fails here until it declares a rule *and* this
file says how to call it (CASES).
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.api.fast_path import ServingApp
from app.auth import service as keys
from app.auth.deps import OpenRule, ScopeRule
from app.auth.principal import Scope
from app.config import Settings
from app.db.base import utcnow
from app.db.migrate import upgrade_to_head
from app.db.session import session_scope
from app.events import log as event_log
from app.main import create_app
from app.models import ApiKey
from tests.factories import csv_bytes, job_request, register_version, seed_mlp
from tests.studies import study_request

MODEL = "alpha-model"
INSTANCE = [0.1, 0.2, 0.3, 0.4]
INVALID = ("no key", "wrong key", "revoked", "expired")
SINGLE_SCOPES = tuple(Scope)
OTHER = "another project's key"
CALLERS: tuple[str, ...] = (*INVALID, *(f"only {s.value}" for s in SINGLE_SCOPES), OTHER)

_uploads = itertools.count()


class AnyKey:
    """The rule of FastAPI's own documentation routes: any valid key."""


ANY_KEY = AnyKey()
Rule = ScopeRule | OpenRule | AnyKey


@dataclass
class World:
    client: TestClient
    settings: Settings
    keys: dict[str, str]  # caller → bearer key ("no key": "")
    alpha_train: str
    dataset_id: str
    job_id: str
    study_id: str

    def fresh_dataset(self) -> str:
        """A new dataset of project alpha (for a DELETE that must find one)."""
        data = csv_bytes(rows=16, seed=1000 + next(_uploads))
        response = self.client.post("/v1/datasets", files={"file": ("d.csv", data)}, headers=bearer(self.alpha_train))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def fresh_key(self) -> str:
        with session_scope(self.settings.sqlalchemy_url) as session:
            row, _ = keys.create_key(session, "alpha", [Scope.READ])
            return row.id


Request = tuple[str, dict[str, Any]]  # url, httpx keyword arguments


@dataclass(frozen=True)
class Case:
    build: Callable[[World], Request]
    ok: frozenset[int]
    alpha: bool  # addresses an object of project alpha: another project's key gets a 404
    endless: bool = False  # a live stream that never ends: only its refusals are requested here


def case(build: Callable[[World], Request], *ok: int, alpha: bool = True, endless: bool = False) -> Case:
    return Case(build, frozenset(ok or (200,)), alpha, endless)


def plain(url: str, *ok: int, alpha: bool = True) -> Case:
    return case(lambda w: (url.format(w=w, m=MODEL), {}), *ok, alpha=alpha)


PREDICT = {"json": {"instances": [INSTANCE]}}
EXPLAIN = {"json": {"instances": [INSTANCE], "steps": 4}}
INFER = {"json": {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": INSTANCE}]}}

CASES: dict[tuple[str, str], Case] = {
    ("GET", "/healthz"): plain("/healthz"),
    ("GET", "/readyz"): plain("/readyz", 200, 503),  # 503: no worker consumes the queued job
    ("GET", "/v2/health/live"): plain("/v2/health/live"),
    ("GET", "/v2/health/ready"): plain("/v2/health/ready"),
    ("GET", "/metrics"): plain("/metrics", alpha=False),
    ("GET", "/openapi.json"): plain("/openapi.json", alpha=False),
    ("GET", "/docs"): plain("/docs", alpha=False),
    ("GET", "/docs/oauth2-redirect"): plain("/docs/oauth2-redirect", alpha=False),
    ("GET", "/redoc"): plain("/redoc", alpha=False),
    ("GET", "/v1/models"): plain("/v1/models", alpha=False),
    ("GET", "/v1/models/{name}"): plain("/v1/models/{m}"),
    ("GET", "/v1/models/{name}/versions/{version}"): plain("/v1/models/{m}/versions/1"),
    ("GET", "/v1/models/{name}/labels/{label}"): plain("/v1/models/{m}/labels/production"),
    ("GET", "/v1/models/{name}/metadata"): plain("/v1/models/{m}/metadata"),
    ("GET", "/v1/models/{name}/versions/{version}/metadata"): plain("/v1/models/{m}/versions/1/metadata"),
    ("GET", "/v1/models/{name}/labels/{label}/metadata"): plain("/v1/models/{m}/labels/production/metadata"),
    ("PUT", "/v1/models/{name}/labels/{label}"): case(
        lambda w: (f"/v1/models/{MODEL}/labels/production", {"json": {"version": 1}})
    ),
    ("GET", "/v1/models/{name}/versions/{version}/artifact"): plain("/v1/models/{m}/versions/1/artifact"),
    ("POST", "/v1/models/{name}/versions/{version}/compress"): case(
        lambda w: (f"/v1/models/{MODEL}/versions/1/compress", {"json": {"method": "int8"}}), 202
    ),
    ("GET", "/v1/models/{name}/compare"): plain("/v1/models/{m}/compare?a=1&b=1"),
    ("POST", "/v1/models/{name}:predict"): case(lambda w: (f"/v1/models/{MODEL}:predict", PREDICT)),
    ("POST", "/v1/models/{name}/versions/{version}:predict"): case(
        lambda w: (f"/v1/models/{MODEL}/versions/1:predict", PREDICT)
    ),
    ("POST", "/v1/models/{name}/labels/{label}:predict"): case(
        lambda w: (f"/v1/models/{MODEL}/labels/production:predict", PREDICT)
    ),
    ("POST", "/v1/models/{name}:explain"): case(lambda w: (f"/v1/models/{MODEL}:explain", EXPLAIN)),
    ("POST", "/v1/models/{name}/versions/{version}:explain"): case(
        lambda w: (f"/v1/models/{MODEL}/versions/1:explain", EXPLAIN)
    ),
    ("POST", "/v1/models/{name}/labels/{label}:explain"): case(
        lambda w: (f"/v1/models/{MODEL}/labels/production:explain", EXPLAIN)
    ),
    # 409: the matrix's model was registered without training, so no importance was computed.
    ("GET", "/v1/models/{name}/versions/{version}/importance"): plain("/v1/models/{m}/versions/1/importance", 409),
    ("GET", "/v2"): plain("/v2", alpha=False),
    ("GET", "/v2/models/{name}"): plain("/v2/models/{m}"),
    ("GET", "/v2/models/{name}/versions/{version}"): plain("/v2/models/{m}/versions/1"),
    ("GET", "/v2/models/{name}/ready"): plain("/v2/models/{m}/ready"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"): plain("/v2/models/{m}/versions/1/ready"),
    ("POST", "/v2/models/{name}/infer"): case(lambda w: (f"/v2/models/{MODEL}/infer", INFER)),
    ("POST", "/v2/models/{name}/versions/{version}/infer"): case(
        lambda w: (f"/v2/models/{MODEL}/versions/1/infer", INFER)
    ),
    ("POST", "/v1/datasets"): case(
        lambda w: ("/v1/datasets", {"files": {"file": ("d.csv", csv_bytes(rows=16, seed=next(_uploads)))}}),
        200,
        201,
        alpha=False,
    ),
    ("GET", "/v1/datasets"): plain("/v1/datasets", alpha=False),
    ("GET", "/v1/datasets/{dataset_id}"): plain("/v1/datasets/{w.dataset_id}"),
    ("GET", "/v1/datasets/{dataset_id}/preview"): plain("/v1/datasets/{w.dataset_id}/preview"),
    ("GET", "/v1/datasets/{dataset_id}/stats"): plain("/v1/datasets/{w.dataset_id}/stats"),
    ("DELETE", "/v1/datasets/{dataset_id}"): case(lambda w: (f"/v1/datasets/{w.fresh_dataset()}", {}), 204),
    ("POST", "/v1/jobs"): case(lambda w: ("/v1/jobs", {"json": job_request(w.dataset_id, name=None)}), 202),
    ("GET", "/v1/jobs"): plain("/v1/jobs", alpha=False),
    ("GET", "/v1/jobs/{job_id}"): plain("/v1/jobs/{w.job_id}"),
    ("GET", "/v1/jobs/{job_id}/metrics"): plain("/v1/jobs/{w.job_id}/metrics"),
    ("GET", "/v1/jobs/{job_id}/events"): plain("/v1/jobs/{w.job_id}/events"),
    ("POST", "/v1/jobs/{job_id}/cancel"): plain("/v1/jobs/{w.job_id}/cancel", 200, 202),
    ("GET", "/v1/jobs/{job_id}/curves.svg"): plain("/v1/jobs/{w.job_id}/curves.svg"),
    ("GET", "/v1/jobs/{job_id}/curves.png"): plain("/v1/jobs/{w.job_id}/curves.png"),
    ("GET", "/v1/jobs/{job_id}/logs"): plain("/v1/jobs/{w.job_id}/logs"),
    ("POST", "/v1/studies"): case(lambda w: ("/v1/studies", {"json": small_study(w.dataset_id)}), 202),
    ("GET", "/v1/studies"): plain("/v1/studies", alpha=False),
    ("GET", "/v1/studies/{study_id}"): plain("/v1/studies/{w.study_id}"),
    ("POST", "/v1/studies/{study_id}/cancel"): plain("/v1/studies/{w.study_id}/cancel", 200, 202),
    ("GET", "/v1/studies/{study_id}/plot.svg"): plain("/v1/studies/{w.study_id}/plot.svg"),
    ("GET", "/v1/events"): case(lambda w: ("/v1/events", {}), alpha=False, endless=True),
    ("GET", "/v1/spec/schema"): plain("/v1/spec/schema", alpha=False),
    ("GET", "/v1/spec/catalog"): plain("/v1/spec/catalog", alpha=False),
    ("POST", "/v1/keys"): case(lambda w: ("/v1/keys", {"json": {"project": "alpha", "scopes": ["read"]}}), 201),
    ("GET", "/v1/keys"): plain("/v1/keys", alpha=False),
    ("DELETE", "/v1/keys/{key_id}"): case(lambda w: (f"/v1/keys/{w.fresh_key()}", {}), 204),
    # The dashboard: open shells and static files (no data), fragments under the read scope.
    ("GET", "/"): plain("/", 200, 307, alpha=False),  # 307 to /ui, which the client follows
    ("GET", "/ui"): plain("/ui", alpha=False),
    ("GET", "/ui/jobs/{job_id}"): plain("/ui/jobs/{w.job_id}", alpha=False),
    ("GET", "/ui/models"): plain("/ui/models", alpha=False),
    ("GET", "/ui/datasets/{dataset_id}"): plain("/ui/datasets/{w.dataset_id}", alpha=False),
    ("GET", "/ui/static/{filename}"): plain("/ui/static/app.js", alpha=False),
    ("GET", "/ui/fragments/jobs"): plain("/ui/fragments/jobs", alpha=False),
    ("GET", "/ui/fragments/jobs/{job_id}"): plain("/ui/fragments/jobs/{w.job_id}"),
    ("GET", "/ui/fragments/models"): plain("/ui/fragments/models", alpha=False),
    ("GET", "/ui/fragments/datasets/{dataset_id}"): plain("/ui/fragments/datasets/{w.dataset_id}"),
}


def small_study(dataset_id: str) -> dict[str, Any]:
    """A one-trial study whose corners share one model (one build at the door)."""
    space = {"/fit/epochs": {"type": "int", "low": 1, "high": 2}}
    return study_request(dataset_id, search_space=space, max_trials=1, parallelism=1)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _rules_in(dependant: Dependant) -> Iterator[Rule]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, ScopeRule | OpenRule):
            yield dependency.call
        yield from _rules_in(dependency)


def route_table(app: ServingApp) -> dict[tuple[str, str], Rule | None]:
    """Every (method, path) the app answers, with its one rule (None: no rule, or several)."""
    table: dict[tuple[str, str], Rule | None] = {}
    for route in iter_route_contexts(app.routes):  # included routers flattened, their dependencies too
        if isinstance(route.original_route, APIRoute):
            rules = set(_rules_in(route.dependant))
            rule: Rule | None = rules.pop() if len(rules) == 1 else None
        else:
            rule = ANY_KEY if route.path in app.doc_paths else None
        for method in sorted(route.methods or {"GET"}):
            if method != "HEAD":
                table[(method, str(route.path))] = rule
    return table


def expected(rule: Rule, case_: Case, caller: str) -> frozenset[int]:
    if isinstance(rule, OpenRule):
        return case_.ok
    if caller in INVALID:
        return frozenset({401})
    if isinstance(rule, AnyKey) or caller == "only admin":
        return case_.ok
    if caller == OTHER:  # every scope but admin, in project beta
        if rule.scopes == (Scope.ADMIN,):
            return frozenset({403})
        return frozenset({404}) if case_.alpha else case_.ok
    scope = Scope(caller.removeprefix("only "))
    return case_.ok if scope in rule.scopes else frozenset({403})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = Settings(home=tmp_path_factory.mktemp("matrix"), auth="on", submit_rate_per_key=0)
    upgrade_to_head(settings)
    register_version(settings, MODEL, seed_mlp(features=4, classes=3, hidden=8), onnx=False, project="alpha")
    made: dict[str, str] = {"no key": "", "wrong key": "ty_" + "x" * 43}
    with session_scope(settings.sqlalchemy_url) as session:
        for scope in SINGLE_SCOPES:
            made[f"only {scope.value}"] = keys.create_key(session, "alpha", [scope])[1]
        made[OTHER] = keys.create_key(session, "beta", [s for s in Scope if s != Scope.ADMIN])[1]
        revoked, made["revoked"] = keys.create_key(session, "alpha", list(Scope))
        keys.revoke_key(session, revoked.id)
        expired, made["expired"] = keys.create_key(session, "alpha", list(Scope), expires_in_days=1)
        session.execute(
            update(ApiKey).where(ApiKey.id == expired.id).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        alpha_train = keys.create_key(session, "alpha", [Scope.TRAIN, Scope.DEPLOY])[1]
    with TestClient(create_app(settings, listen_hosts=["0.0.0.0"]), base_url="http://127.0.0.1") as client:
        admin = bearer(made["only admin"])
        client.put(f"/v1/models/{MODEL}/labels/production", json={"version": 1}, headers=admin).raise_for_status()
        response = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes())}, headers=bearer(alpha_train))
        dataset_id = response.json()["id"]
        job = client.post("/v1/jobs", json=job_request(dataset_id), headers=bearer(alpha_train)).json()
        study = client.post("/v1/studies", json=small_study(dataset_id), headers=bearer(alpha_train)).json()
        yield World(client, settings, made, alpha_train, dataset_id, job["id"], study["id"])


def test_every_route_has_one_rule_and_a_case() -> None:
    app = create_app(Settings(auth="on"))
    table = route_table(app)  # type: ignore[arg-type]

    assert [route for route, rule in table.items() if rule is None] == [], "routes without one auth rule"
    assert sorted(set(table) - set(CASES)) == [], "routes this matrix does not call: add them to CASES"
    assert sorted(set(CASES) - set(table)) == [], "CASES for routes that no longer exist"


@pytest.mark.parametrize("caller", CALLERS)
def test_each_caller_gets_the_promised_status_on_every_route(world: World, caller: str) -> None:
    table = route_table(world.client.app)  # type: ignore[arg-type]
    wrong: list[str] = []
    for (method, path), rule in sorted(table.items()):
        assert rule is not None, f"{method} {path} has no rule"
        case_ = CASES[(method, path)]
        want = expected(rule, case_, caller)
        if case_.endless and want == case_.ok:
            continue  # allowed: it would stream forever (the live-events tests read it)
        url, kwargs = case_.build(world)
        response = world.client.request(method, url, headers=bearer(world.keys[caller]), **kwargs)
        if response.status_code not in want:
            wrong.append(f"{method} {path}: {response.status_code} (want {sorted(want)}) {response.text[:120]}")
        elif response.status_code == 401:
            assert response.headers["www-authenticate"] == "Bearer", path
    assert wrong == []


def test_lists_hold_only_the_callers_project_and_admin_sees_all(world: World) -> None:
    other = bearer(world.keys[OTHER])
    admin = bearer(world.keys["only admin"])
    read = bearer(world.keys["only read"])

    assert world.client.get("/v1/jobs", headers=other).json()["items"] == []
    assert [m["name"] for m in world.client.get("/v1/models", headers=other).json()["items"]] == []
    assert world.dataset_id not in {d["id"] for d in world.client.get("/v1/datasets", headers=other).json()["items"]}
    assert world.dataset_id in {d["id"] for d in world.client.get("/v1/datasets", headers=read).json()["items"]}
    assert MODEL in {m["name"] for m in world.client.get("/v1/models?project=alpha", headers=admin).json()["items"]}
    assert world.client.get("/v1/models?project=beta", headers=admin).json()["items"] == []
    assert world.client.get(f"/v1/jobs/{world.job_id}", headers=admin).json()["project"] == "alpha"
    assert world.client.get(f"/v1/datasets/{world.dataset_id}", headers=read).json()["project"] == "alpha"
    assert world.client.get("/v1/jobs?project=alpha", headers=read).status_code == 200
    assert world.client.get("/v1/jobs?project=beta", headers=read).status_code == 403


def test_the_all_jobs_stream_reads_only_the_callers_project(world: World) -> None:
    with session_scope(world.settings.sqlalchemy_url) as session:
        alpha = {row.job_id for row in event_log.of_all(session, 0, project="alpha")}
        beta = {row.job_id for row in event_log.of_all(session, 0, project="beta")}
        everyone = {row.job_id for row in event_log.of_all(session, 0)}
    assert world.job_id in alpha and world.job_id in everyone
    assert beta == set()
