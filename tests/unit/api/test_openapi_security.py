"""The OpenAPI document declares the bearer key on exactly the routes that need one, so clients
and schemathesis see it (from the route table, like the access matrix: a new route is covered)."""

from fastapi.testclient import TestClient

from app.auth.deps import OpenRule, ScopeRule
from app.config import Settings
from app.main import create_app
from tests.unit.api.test_access_matrix import route_table


def test_every_route_with_a_scope_rule_declares_the_bearer_key_and_open_routes_do_not() -> None:
    app = create_app(Settings(auth="on"))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        # The document itself needs a key with auth on: read it from the app.
        document = app.openapi()
        assert client.get("/openapi.json").status_code == 401
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    declared = {
        (method.upper(), path): operation.get("security")
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    checked = 0
    for (method, path), rule in route_table(app).items():
        if (method, path) not in declared:
            continue  # not in the document (the documentation routes themselves)
        if isinstance(rule, ScopeRule):
            assert declared[(method, path)] == [{"ApiKey": []}], (method, path)
            checked += 1
        elif isinstance(rule, OpenRule):
            assert declared[(method, path)] is None, (method, path)
    assert checked > 30
