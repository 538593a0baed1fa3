"""FastAPI dependencies: every route declares the scopes it needs, or that it is open.

`ScopeRule` objects are what the access-matrix test reads from the route table: a route with
neither a `ScopeRule` nor `OPEN` fails that test.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.authenticator import Authenticator
from app.auth.limits import RateKind
from app.auth.principal import Principal, Scope

# Declares the bearer scheme in the OpenAPI document, on exactly the routes with a ScopeRule, so
# clients and schemathesis know to send a key. It checks nothing: the Authenticator reads the raw
# header itself (a malformed one gets its own 401 message; with auth off none is needed).
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (`ty_…`, from `trainyard keys create` or `POST /v1/keys`): "
    "`Authorization: Bearer <key>`. Not needed when the server runs with auth off (TRAINYARD_AUTH).",
)


async def get_principal(
    request: Request, _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Principal:
    """The caller of this request (resolved once; FastAPI caches it for the request)."""
    authenticator: Authenticator = request.app.state.auth
    return await authenticator.principal(request.headers.get("authorization"))


class ScopeRule:
    """A route's rule: the caller needs one of `scopes` (and `rate`: one request of that budget)."""

    def __init__(self, *scopes: Scope, rate: RateKind | None = None) -> None:
        self.scopes = scopes
        self.rate = rate

    async def __call__(self, request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        principal.require(*self.scopes)
        if self.rate is not None:
            authenticator: Authenticator = request.app.state.auth
            authenticator.limiter.take(principal.key_id, self.rate)
        return principal

    def __repr__(self) -> str:
        return f"ScopeRule({', '.join(s.value for s in self.scopes)})"


class OpenRule:
    """A route anyone may call (health probes)."""

    async def __call__(self) -> None:
        return None


OPEN = OpenRule()

ReadKey = Annotated[Principal, Depends(ScopeRule(Scope.READ))]
# What serving clients read before they predict (model metadata and readiness): read or predict.
ServingReadKey = Annotated[Principal, Depends(ScopeRule(Scope.READ, Scope.PREDICT))]
TrainKey = Annotated[Principal, Depends(ScopeRule(Scope.TRAIN))]
SubmitKey = Annotated[Principal, Depends(ScopeRule(Scope.TRAIN, rate=RateKind.SUBMIT))]
PredictKey = Annotated[Principal, Depends(ScopeRule(Scope.PREDICT, rate=RateKind.PREDICT))]
DeployKey = Annotated[Principal, Depends(ScopeRule(Scope.DEPLOY))]
AdminKey = Annotated[Principal, Depends(ScopeRule(Scope.ADMIN))]
