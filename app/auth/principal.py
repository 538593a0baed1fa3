"""Scopes and the `Principal` a request acts as (resolved once per request from its key)."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from app.errors import Forbidden
from app.models import DEFAULT_PROJECT

PROJECT_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class Scope(StrEnum):
    READ = "read"  # GET of datasets, jobs, models, metrics, events
    TRAIN = "train"  # upload datasets, submit and cancel jobs
    PREDICT = "predict"  # :predict, /v2/…/infer
    DEPLOY = "deploy"  # move labels, delete models and datasets
    ADMIN = "admin"  # keys, every project


@dataclass(frozen=True)
class Principal:
    """The caller: a key's id, project and scopes (`key_id` None: auth is off, a local user)."""

    key_id: str | None
    project: str
    scopes: frozenset[Scope]
    expires_at: datetime | None = None
    # Worked out once per key, not per request: hashing an Enum member runs Python code, and
    # predict pays for every check (bench/RESULTS.md, "predict with API keys").
    is_admin: bool = field(init=False)
    project_filter: str | None = field(init=False)  # None: every project (admin)
    _names: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        admin = Scope.ADMIN in self.scopes
        object.__setattr__(self, "is_admin", admin)
        object.__setattr__(self, "project_filter", None if admin else self.project)
        object.__setattr__(self, "_names", frozenset(str(s.value) for s in self.scopes))

    def require(self, *scopes: Scope) -> None:
        """Forbidden unless the caller holds one of `scopes` (admin holds them all)."""
        if self.is_admin or not self._names.isdisjoint(scopes):
            return
        wanted = " or ".join(f"'{s.value}'" for s in scopes)
        raise Forbidden(f"this API key lacks the {wanted} scope this request needs")

    def require_name(self, scope: str) -> None:
        """`require` for one scope given by its plain name (the predict fast path)."""
        if not self.is_admin and scope not in self._names:
            raise Forbidden(f"this API key lacks the '{scope}' scope this request needs")

    def list_filter(self, requested: str | None) -> str | None:
        """The project a list is limited to when the client asked for `requested` (`?project=`)."""
        if self.is_admin:
            return requested
        if requested is not None and requested != self.project:
            raise Forbidden("only an admin key lists another project's objects")
        return self.project

    def sees(self, project: str) -> bool:
        return self.is_admin or project == self.project


# With auth off the caller is the machine's own user: every scope, objects go to "default".
LOCAL_USER = Principal(key_id=None, project=DEFAULT_PROJECT, scopes=frozenset(Scope))
