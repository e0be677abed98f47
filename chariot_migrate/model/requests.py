"""Pydantic models of the request bodies the Chariot API accepts, with clear error messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import bad_request, describe
from .keys import check_key_size
from .status import ASSET_STATUSES, ROLES, parse_risk_status

# An entity key named by the client: non-empty and within DynamoDB's sort-key size, so a lookup,
# update or delete of an impossible key is the same 400 on both sides (never a store error).
EntityKey = Annotated[str, Field(min_length=1), AfterValidator(check_key_size)]


__all__ = ["describe", "parse_model"]  # describe lives with the errors; callers import it from here too

M = TypeVar("M", bound=BaseModel)


def parse_model(cls: type[M], data: Any) -> M:
    """Validate ``data`` with ``cls``; a bad body is an :class:`~.errors.ApiError` 400 naming each field."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise bad_request(describe(e)) from None


class _Body(BaseModel):
    # Clients send extra fields (older UI shapes); ignore them rather than fail.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _asset_status(v: str) -> str:
    if v not in ASSET_STATUSES:
        raise ValueError(f"invalid asset status {v!r} (want one of {', '.join(sorted(ASSET_STATUSES))})")
    return v


class AssetAdd(_Body):
    group: str = Field(min_length=1)
    identifier: str = Field(min_length=1)
    status: str = "A"
    attack_surface: list[str] = Field(default_factory=list, alias="attackSurface")
    type: str = "asset"
    resource_type: str | None = Field(None, alias="resourceType")

    @model_validator(mode="before")
    @classmethod
    def _old_shape(cls, v: Any) -> Any:
        # The older UI sent {dns, name}; tabularium copies them into group/identifier.
        if isinstance(v, dict):
            v = dict(v)
            v.setdefault("group", v.get("dns"))
            v.setdefault("identifier", v.get("name") or v.get("dns"))
        return v

    _st = field_validator("status")(classmethod(lambda cls, v: _asset_status(v)))

    @field_validator("attack_surface")
    @classmethod
    def _surface(cls, v: list[str]) -> list[str]:
        return [s for s in v if s]


class AssetUpdate(_Body):
    key: EntityKey
    status: str | None = None
    attack_surface: list[str] | None = Field(None, alias="attackSurface")
    secret: str | None = None
    comment: str | None = None

    @field_validator("status")
    @classmethod
    def _st(cls, v: str | None) -> str | None:
        return None if v is None else _asset_status(v)


class KeyBody(_Body):
    key: EntityKey


def _risk_status(v: str) -> str:
    parse_risk_status(v)
    return v


class RiskAdd(_Body):
    key: EntityKey = Field(description="key of the asset (or attribute) the risk is on")
    name: str = Field(min_length=1)
    status: str
    comment: str | None = None
    source: str = ""
    title: str | None = None
    tags: list[str] = Field(default_factory=list)

    _st = field_validator("status")(classmethod(lambda cls, v: _risk_status(v)))


class RiskUpdate(_Body):
    key: EntityKey
    status: str | None = None
    comment: str | None = None
    title: str | None = None
    tags: list[str] | None = None
    remove: int | None = None

    @field_validator("status")
    @classmethod
    def _st(cls, v: str | None) -> str | None:
        return None if v is None else _risk_status(v)


class RiskDelete(_Body):
    key: EntityKey
    status: str = "DIO"
    comment: str | None = None

    @field_validator("status")
    @classmethod
    def _deleted(cls, v: str) -> str:
        state, _, _ = parse_risk_status(v)
        if state != "D":
            raise ValueError(f"deleting a risk needs a D status (e.g. DHF), got {v!r}")
        return v


class AttributeAdd(_Body):
    key: EntityKey = Field(description="key of the entity the attribute is on")
    name: str = Field(min_length=1)
    value: str = Field(min_length=1)

    @field_validator("value", mode="before")
    @classmethod
    def _str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


class SeedAdd(_Body):
    type: str = "asset"
    model: dict[str, Any]

    @field_validator("model")
    @classmethod
    def _dns(cls, v: dict[str, Any]) -> dict[str, Any]:
        dns = v.get("dns") or v.get("group")
        if not isinstance(dns, str) or not dns:
            raise ValueError("seed model needs a non-empty 'dns'")
        if "status" in v and v["status"] is not None:
            _asset_status(v["status"])
        return v


class StatusUpdate(_Body):
    key: EntityKey
    status: str
    comment: str | None = None

    _st = field_validator("status")(classmethod(lambda cls, v: _asset_status(v)))


class PreseedAdd(_Body):
    type: str = Field(min_length=1)
    title: str = Field(min_length=1)
    value: str = Field(min_length=1)
    status: str = "A"
    display: str = "text"

    _st = field_validator("status")(classmethod(lambda cls, v: _asset_status(v)))


class JobAdd(_Body):
    key: EntityKey
    capabilities: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    credential_ids: list[str] = Field(default_factory=list)


class AccountLink(_Body):
    config: dict[str, Any] = Field(default_factory=dict)
    value: str = ""
    role: str | None = None
    key: str | None = None
    member: str | None = None


def check_role(role: str | None) -> str | None:
    if role is not None and role not in ROLES:
        raise ValueError(f"invalid role {role!r} (want one of {', '.join(ROLES)})")
    return role


class ApiKeyAdd(_Body):
    name: str = Field(min_length=1)
    expires: str | None = None

    @field_validator("expires")
    @classmethod
    def _rfc3339(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise ValueError(f"expires must look like YYYY-MM-DDTHH:MM:SSZ, got {v!r}") from None
        return v


class NamedValue(_Body):
    name: str = Field(min_length=1)
    value: Any = None


class NameOnly(_Body):
    name: str = Field(min_length=1)


class BulkBody(_Body):
    action: str = "upsert"
    items: list[dict[str, Any]] = Field(max_length=10000)

    @field_validator("action")
    @classmethod
    def _upsert(cls, v: str) -> str:
        if v != "upsert":
            raise ValueError(f"unsupported bulk action {v!r} (only 'upsert')")
        return v


class HookBody(_Body):
    dns: str = Field(min_length=1)
    name: str = Field(min_length=1)
    finding: str | None = None


# GET /schema: the request-body schemas, keyed by entity type (the legacy's exact set and order).
ENTITY_SCHEMAS: dict[str, type[BaseModel]] = {
    "asset": AssetAdd, "risk": RiskAdd, "attribute": AttributeAdd, "seed": SeedAdd, "preseed": PreseedAdd,
    "job": JobAdd, "account": AccountLink, "key": ApiKeyAdd, "setting": NamedValue, "configuration": NamedValue}


def entity_schemas() -> dict[str, Any]:
    """The ``GET /schema`` answer: each entity type's JSON schema, by its JSON field names."""
    return {name: model.model_json_schema(by_alias=True) for name, model in ENTITY_SCHEMAS.items()}
