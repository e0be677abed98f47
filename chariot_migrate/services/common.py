"""The base every Chariot service builds on: settings, app factory, legacy-compatible auth and errors.

What it adds to :mod:`chariot_migrate.services.kit`:

* tokens are verified with the PUBLIC half of the legacy signing key read from Secrets Manager, so
  tokens issued by the legacy ``/token`` function and by the account service are both valid
  (unless ``JWKS_URL`` / ``JWKS_JSON`` / ``JWT_PUBLIC_KEY`` is set);
* the caller is resolved like the legacy authorizer (``chariot_migrate/legacy/auth.py``): a bare or
  ``Bearer`` token, the ``account`` header as assume-role (collaborators only, via the account
  service's internal membership API, cached), the trusted replay identity acting for any account;
* errors in the legacy shape: ``400 {"message": "<field>: <problem>"}``, ``401 {"message":
  "Unauthorized"}``, ``403 {"message": "Forbidden: ..."}``, ``404``, ``405``, ``500 {"message":
  "internal error"}``;
* ``app.state.repos[name]`` (one :class:`AsyncRepository` per declared table), ``app.state.bus``,
  ``app.state.cache``, ``app.state.signing_key``, ``app.state.service_token``;
* :func:`replay_values` for dual-write replays (identifier adoption) and :class:`FlagCache`
  (settings/feature flags hot-reloaded from ``config.changed`` events).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import boto3
import redis.asyncio as aioredis
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chariot_migrate.model import tokens
from chariot_migrate.model.keys import kind_of, plural
from chariot_migrate.model.replay import HEADER as PRIMARY_HEADER
from chariot_migrate.model.replay import author, primary_entity
from chariot_migrate.model.requests import describe
from chariot_migrate.model.tokens import SigningKey

from .kit import (
    AsyncRepository,
    Authenticator,
    AuthError,
    Caller,
    Event,
    InProcessBus,
    KeySource,
    MembershipLookup,
    RedisStreamsBus,
    Repository,
    ServiceClient,
    ServiceSettings,
    ServiceTokenProvider,
    TableSpec,
    TokenVerifier,
    create_service_app,
    ensure_tables,
)
from .kit.auth import ROLE_RANK
from .kit.cache import TTLCache
from .kit.ready import bus_check, dynamodb_tables_check, redis_check
from .kit.repository import deserialize_item, serialize_item
from .read_cache import service_cache

log = logging.getLogger("chariot.services")
M = TypeVar("M", bound=BaseModel)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REPLAY_HEADER = "x-migrate-replay"
DEFAULT_SIGNING_SECRET = "chariot/signing-key"  # = chariot_migrate.legacy.aws.DEFAULT_SECRET
DEFAULT_REPLAY_PRINCIPAL = "replay@chariot-migrate.local"  # = legacy.aws.DEFAULT_REPLAY_PRINCIPAL
# Names the legacy functions read; services honour them too so one env serves both sides.
LEGACY_ENV = {"signing_secret_id": "CHARIOT_SIGNING_SECRET_ID", "replay_principal": "CHARIOT_REPLAY_PRINCIPAL"}

# An event subscription: (consumer group, event types, handler(event) or handler(event, app)).
Subscription = tuple[str, list[str], Callable[..., Awaitable[Any]]]
Hook = Callable[[FastAPI], Any]


class ChariotSettings(ServiceSettings):
    """Env ``CHARIOT_<SERVICE>_<FIELD>``, then ``<FIELD>``, then (for the two legacy names)
    ``CHARIOT_SIGNING_SECRET_ID`` / ``CHARIOT_REPLAY_PRINCIPAL``, then the default."""

    signing_secret_id: str = DEFAULT_SIGNING_SECRET
    account_url: str | None = None  # account service, for membership (assume-role) lookups
    replay_principal: str = DEFAULT_REPLAY_PRINCIPAL
    # Short: legacy checks membership on every call, so an unlinked collaborator must lose access
    # at once (the cache only absorbs bursts of one client's calls).
    membership_cache_seconds: float = 1.0
    page_size: int = 1000  # GET /my page size (legacy: CHARIOT_PAGE_SIZE)
    # app.state.cache: entries live this long per instance (L1) and in Redis (L2). Writes through
    # the service invalidate at once; the L2 TTL (+ L1) bounds how long a write made around the
    # service that does not invalidate can stay unseen.
    cache_l1_ttl_seconds: float = 5.0
    cache_l2_ttl_seconds: float = 60.0

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None, **overrides: Any):  # type: ignore[override]
        env = os.environ if env is None else env
        prefix = "CHARIOT_" + service.upper().replace("-", "_") + "_"
        fallbacks = dict(LEGACY_ENV, page_size="CHARIOT_PAGE_SIZE")
        for field, legacy_var in fallbacks.items():
            if field in overrides or (prefix + field.upper()) in env or field.upper() in env:
                continue
            if legacy_var in env:
                overrides[field] = env[legacy_var]
        return super().from_env(service, env, **overrides)


# ---- request helpers (legacy parity) ----------------------------------------------------------


class ApiError(StarletteHTTPException):
    """Raise from a route to answer ``{"message": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status_code=status, detail=message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


async def json_body(request: Request, default: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request body as a JSON object, with the legacy's exact 400 messages.

    ``default`` is used for an empty body (else an empty body is a 400). The parsed body is kept
    on ``request.state.json_body`` so :func:`replay_values` can read it.
    """
    raw = await request.body()
    if not raw.strip():
        if default is not None:
            request.state.json_body = default
            return default
        raise bad_request("request body must be a JSON object")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    problem = unstorable(body)
    if problem:
        raise bad_request(problem)
    request.state.json_body = body
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# DynamoDB numbers: 38 significant digits, magnitude 1e-130 .. 9.99…e125.
_MAX_NUMBER, _MIN_NUMBER = Decimal("9.9999999999999999999999999999999999999E+125"), Decimal("1E-130")


def unstorable(value: Any, where: str = "body") -> str | None:
    """Why a parsed JSON value cannot be stored as is, or ``None`` (pure).

    JSON allows what the stores reject: lone UTF-16 surrogates (``"\\ud800"`` is not UTF-8),
    numbers DynamoDB cannot hold, and empty field names in nested objects (stored maps lose them).
    Caught here they are a 400 with the field, not a 500 later.
    """
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            if not _utf8(v):
                return f"{path}: text must be valid Unicode (it contains a lone surrogate escape like \\ud800)"
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int | float):
            d = Decimal(str(v)) if isinstance(v, float) else Decimal(v)
            digits = "".join(map(str, d.as_tuple().digits)).strip("0")  # significant digits, exactly
            if d and (abs(d) > _MAX_NUMBER or abs(d) < _MIN_NUMBER or len(digits) > 38):
                return f"{path}: number {v!r} is out of range (at most 38 digits, magnitude 1e-130 to 1e125)"
        elif isinstance(v, dict):
            for k, item in v.items():
                if not _utf8(k):
                    return f"{path}: field names must be valid Unicode (one contains a lone surrogate escape)"
                if not k and path != where:  # nested maps with an empty key do not round-trip the store
                    return f"{path}: field names inside objects must not be empty"
                stack.append((f"{path}.{k}" if len(path) < 200 else path, item))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]" if len(path) < 200 else path, item) for i, item in enumerate(v))
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_model(cls: type[M], body: Any) -> M:
    """Validate ``body`` with a :mod:`chariot_migrate.model.requests` model; 400 with the reason."""
    try:
        return cls.model_validate(body)
    except ValidationError as e:
        raise bad_request(describe(e)) from None


def param_flag(request: Request, name: str) -> bool:
    """Legacy boolean query flags: only the (case-insensitive) string ``true`` is true."""
    values = request.query_params.getlist(name)
    return bool(values) and values[-1].lower() == "true"


def param(request: Request, name: str, default: str | None = None) -> str | None:
    """The last value of a query parameter (API Gateway keeps the last one), like the legacy."""
    values = request.query_params.getlist(name)
    return values[-1] if values else default


# ---- OpenAPI documentation of hand-read bodies and query parameters ---------------------------
#
# Routes read their JSON body with json_body + parse_model (to keep the legacy's exact 400s), so
# FastAPI cannot see what they accept. ``openapi_doc`` describes it in the schema (clients, and
# the schemathesis run in tests/integration/services, then know the real contract).

# Nested models' schemas (pydantic ``$defs``), served under components/schemas by every service.
OPENAPI_COMPONENTS: dict[str, dict[str, Any]] = {}
_REF_TEMPLATE = "#/components/schemas/{model}"


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema (by alias) with nested definitions moved to components."""
    schema = model.model_json_schema(by_alias=True, ref_template=_REF_TEMPLATE)
    OPENAPI_COMPONENTS.update(schema.pop("$defs", {}))
    return schema


def query_param(name: str, description: str, *, required: bool = False,
                schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


FLAG = {"type": "boolean"}  # legacy flags: only the string "true" is true
GLOBAL_PARAM = query_param("global", "read the shared 'global' partition instead of the account's", schema=FLAG)
MY_QUERY = (
    query_param("key", "a key prefix like #job# (or field:value)", required=True),
    query_param("exact", "match the key exactly", schema=FLAG),
    query_param("to", "upper bound of a key range"),
    query_param("desc", "newest/last keys first", schema=FLAG),
    query_param("label", "entity kind a field:value search is limited to"),
    GLOBAL_PARAM,
    query_param("offset", "the JSON 'offset' object a previous page returned"),
)


def openapi_doc(body: type[BaseModel] | Sequence[type[BaseModel]] | dict[str, Any] | None = None, *,
                body_required: bool = True, query: Sequence[dict[str, Any]] = (),
                media_type: str = "application/json") -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body / query parameters by hand.

    ``body`` is a model, several models (any of them is accepted) or a raw JSON schema.
    """
    extra: dict[str, Any] = {}
    if query:
        extra["parameters"] = list(query)
    if body is not None:
        if isinstance(body, dict):
            schema = body
        elif isinstance(body, type):
            schema = model_schema(body)
        else:
            schema = {"anyOf": [model_schema(m) for m in body]}
        extra["requestBody"] = {"required": body_required, "content": {media_type: {"schema": schema}}}
    return extra


def _serve_components(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in OPENAPI_COMPONENTS.items():
            components.setdefault(name, definition)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# ---- GET /my over a service's own (username, key) table, with the legacy's semantics ---------

GLOBAL_USERNAME = "global"
OFFSET_MESSAGE = "offset must be the JSON object a previous page returned"
KEY_REQUIRED_MESSAGE = "query parameter 'key' is required (a key prefix like #job# or field:value)"


def plain(obj: Any) -> Any:
    """DynamoDB values → JSON (Decimal → int/float); hidden ``_fields`` dropped, like the legacy."""
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list | tuple | set | frozenset):
        return [plain(v) for v in obj]
    return obj


def parse_offset(raw: str | None, username: str) -> dict[str, Any] | None:
    """``offset=<json>`` → the ExclusiveStartKey of the next page (400 unless it is ours)."""
    if not raw:
        return None
    try:
        start = json.loads(raw)
    except ValueError:
        raise bad_request(OFFSET_MESSAGE) from None
    if not isinstance(start, dict) or start.get("username") != username or not isinstance(start.get("key"), str):
        raise bad_request(OFFSET_MESSAGE)
    return start


def bucketize(items: Sequence[Mapping[str, Any]], last: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"<plural kind>": [...], "offset": {...}}`` exactly like the legacy search function."""
    out: dict[str, Any] = {}
    for item in items:
        out.setdefault(plural(kind_of(str(item["key"])) or "other"), []).append(item)
    if last:
        out["offset"] = dict(last)
    return plain(out)


@dataclass(frozen=True, slots=True)
class MyQuery:
    """A parsed ``GET /my`` request (see :func:`parse_my_query`)."""

    username: str  # the partition read: the caller's account, or ``global``
    term: str  # ``#prefix…`` (a key condition) or ``field:value`` (a filtered partition scan)
    exact: bool = False
    desc: bool = False
    to: str | None = None  # upper bound of a key range
    label: str = ""  # kind a field:value search is limited to (lowercase)
    start: dict[str, Any] | None = None  # ExclusiveStartKey from ``offset``
    field_filter: tuple[str, str] | None = None

    @property
    def key_prefix(self) -> str:
        """The ``begins_with`` prefix of a field:value scan or of a ``#prefix…`` term."""
        if self.field_filter is not None:
            return f"#{self.label}#" if self.label else "#"
        return self.term


def parse_my_query(request: Request, username: str) -> MyQuery:
    """``GET /my?key=#prefix…`` (with ``exact``, ``to``, ``desc``, ``label``, ``global``, ``offset``),
    with the legacy's 400s. ``username`` is the caller's account; ``global=true`` switches to the
    shared ``global`` partition like the legacy."""
    term = param(request, "key")
    if not term:
        raise bad_request(KEY_REQUIRED_MESSAGE)
    if param_flag(request, "global"):
        username = GLOBAL_USERNAME
    start = parse_offset(param(request, "offset"), username)
    exact, desc = param_flag(request, "exact"), param_flag(request, "desc")
    label = (param(request, "label") or "").lower()
    if term.startswith("#"):
        return MyQuery(username, term, exact, desc, param(request, "to"), label, start)
    field, sep, value = term.partition(":")
    if not sep or not field:
        raise bad_request("key must be a key prefix starting with '#' or field:value")
    return MyQuery(username, term, exact, desc, None, label, start, (field, value))


def filter_my_items(items: list[dict[str, Any]], q: MyQuery) -> list[dict[str, Any]]:
    """What ``GET /my`` keeps of the rows its key condition read (pure)."""
    if q.field_filter is not None:
        f, v = q.field_filter
        return [i for i in items if i.get(f) is not None and (str(i[f]) == v if q.exact else str(i[f]).startswith(v))]
    if q.label:
        return [i for i in items if kind_of(str(i["key"])) == q.label]
    return items


def run_my_query(client: Any, table: str, q: MyQuery, *, page_size: int) -> dict[str, Any]:
    """One page of ``q`` from DynamoDB. Blocking (boto3): call it through ``anyio.to_thread``."""
    names = {"#u": "username", "#k": "key"}
    values: dict[str, Any] = {":u": {"S": q.username}}
    cond = "#u = :u"
    if q.field_filter is None and q.exact:
        cond += " AND #k = :k"
        values[":k"] = {"S": q.term}
    elif q.field_filter is None and q.to:
        cond += " AND #k BETWEEN :k AND :to"
        values.update({":k": {"S": q.term}, ":to": {"S": q.to}})
    else:
        cond += " AND begins_with(#k, :k)"
        values[":k"] = {"S": q.key_prefix}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": cond,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": not q.desc,
        "Limit": page_size,
    }
    if q.start:
        kwargs["ExclusiveStartKey"] = {"username": {"S": q.username}, "key": {"S": q.start["key"]}}
    resp = client.query(**kwargs)
    items = filter_my_items([deserialize_item(r) for r in resp.get("Items", [])], q)
    raw_last = resp.get("LastEvaluatedKey")
    last = {k: v.get("S") for k, v in raw_last.items()} if raw_last else None
    return bucketize(items, last)


def query_my(client: Any, table: str, request: Request, username: str, *, page_size: int) -> dict[str, Any]:
    """``GET /my`` over a ``(username, key)`` table: :func:`parse_my_query` + :func:`run_my_query`.

    Blocking (boto3): call it through ``anyio.to_thread.run_sync``.
    """
    return run_my_query(client, table, parse_my_query(request, username), page_size=page_size)


class PlainStore:
    """Blocking get/put/delete/prefix-query over ``(username, key)`` tables whose items must stay
    byte-for-byte like the legacy rows (unlike ``kit.Repository`` it adds no ``version``).

    ``table_names`` maps each declared table name to its real (possibly prefixed) name; call the
    methods through ``anyio.to_thread``. The legacy drops empty GSI attributes (status, source,
    dns) on write; so does this. ``after_write(table, username, key)``, when set, is called after
    every successful ``put``/``delete`` (the hook read caches invalidate from).
    """

    GSI_FIELDS = ("status", "source", "dns")

    def __init__(self, client: Any, table_names: Mapping[str, str]) -> None:
        self.client = client
        self.names = dict(table_names)
        self.after_write: Callable[[str, str, str], None] | None = None

    @classmethod
    def from_app(cls, app: FastAPI) -> Any:
        repos = app.state.repos
        client = next(iter(repos.values())).sync.client
        return cls(client, {name: repo.sync.table for name, repo in repos.items()})

    def table(self, name: str) -> str:
        return self.names[name]

    def _key(self, username: str, key: str) -> dict[str, Any]:
        return {"username": {"S": username}, "key": {"S": key}}

    def get(self, table: str, username: str, key: str) -> dict[str, Any] | None:
        resp = self.client.get_item(TableName=self.table(table), Key=self._key(username, key), ConsistentRead=True)
        raw = resp.get("Item")
        return deserialize_item(raw) if raw else None

    def put(self, table: str, item: Mapping[str, Any]) -> dict[str, Any]:
        stored = dict(item)
        for f in self.GSI_FIELDS:
            if f in stored and (not isinstance(stored[f], str) or stored[f] == ""):
                stored.pop(f)
        try:
            self.client.put_item(TableName=self.table(table), Item=serialize_item(stored))
        finally:  # a failed call may still have written (a timeout after the write): invalidate anyway
            self._written(table, str(item.get("username", "")), str(item.get("key", "")))
        return dict(item)

    def delete(self, table: str, username: str, key: str) -> dict[str, Any] | None:
        try:
            resp = self.client.delete_item(
                TableName=self.table(table), Key=self._key(username, key), ReturnValues="ALL_OLD"
            )
        finally:
            self._written(table, username, key)
        raw = resp.get("Attributes")
        return deserialize_item(raw) if raw else None

    def _written(self, table: str, username: str, key: str) -> None:
        if self.after_write is not None:
            self.after_write(table, username, key)

    def query_all(self, table: str, username: str, prefix: str, *, limit: int | None = None,
                  descending: bool = False) -> list[dict[str, Any]]:
        """Rows of ``username`` whose key starts with ``prefix`` (``""``: the whole partition)."""
        out: list[dict[str, Any]] = []
        start = None
        cond, names, values = "#u = :u", {"#u": "username"}, {":u": {"S": username}}
        if prefix:  # DynamoDB rejects an empty begins_with operand
            cond += " AND begins_with(#k, :p)"
            names["#k"], values[":p"] = "key", {"S": prefix}
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table(table),
                "KeyConditionExpression": cond,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": not descending,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            resp = self.client.query(**kwargs)
            out.extend(deserialize_item(r) for r in resp.get("Items", []))
            start = resp.get("LastEvaluatedKey")
            if not start or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out

    def query_my(self, table: str, request: Request, username: str, *, page_size: int) -> dict[str, Any]:
        return query_my(self.client, self.table(table), request, username, page_size=page_size)


# ---- replay (dual-write identifier adoption) ---------------------------------------------------


def is_replay(request: Request) -> bool:
    """A dual-write replay: ``X-Migrate-Replay: 1`` from the verified trusted replay identity."""
    who: Caller | None = getattr(request.state, "caller", None)
    settings = getattr(request.app.state, "settings", None)
    principal = getattr(settings, "replay_principal", DEFAULT_REPLAY_PRINCIPAL)
    return (
        who is not None
        and not who.internal
        and who.principal == principal
        and request.headers.get(REPLAY_HEADER) == "1"
    )


def replay_values(request: Request, body: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """When this request is a replay: the body's non-empty values to adopt (key, id, created,
    updated, _salt, _hash, ...). ``None`` for every other request, which mints its own values.

    ``body`` defaults to what :func:`json_body` parsed. Call after the caller was authenticated.
    """
    if not is_replay(request):
        return None
    source = body if body is not None else getattr(request.state, "json_body", None)
    own = {k: v for k, v in source.items() if v not in (None, "")} if isinstance(source, Mapping) else {}
    # The primary's answer holds the generated values (the client's body rarely does, and its
    # fields may mean something else, e.g. PUT /attribute's "key" is the source asset): it wins.
    return {**own, **primary_values(request)}


def primary_values(request: Request) -> dict[str, Any]:
    """During a replay: the entity the primary side answered with (``X-Migrate-Primary-Result``),
    so generated values (key, id, timestamps, history authors) match the primary's; ``{}`` when
    this is no replay, the header is absent/truncated/garbled, or the answer is not one object."""
    if not is_replay(request):
        return {}
    return primary_entity(request.headers.get(PRIMARY_HEADER))


def replay_author(primary: Mapping[str, Any]) -> str | None:
    """Who the primary recorded as the author of this change (its last history entry's ``by``)."""
    return author(primary)


def adopt(values: Mapping[str, Any] | None, field: str, default: Any) -> Any:
    """``values[field]`` during a replay (the primary's generated value), else ``default``."""
    if values and values.get(field) not in (None, ""):
        return values[field]
    return default


# ---- authentication like the legacy authorizer -------------------------------------------------


class ChariotAuthenticator(Authenticator):
    """The kit authenticator with the legacy rules and messages (see module docstring)."""

    replay_principal: str = DEFAULT_REPLAY_PRINCIPAL

    async def authenticate(self, authorization: str | None, account_header: str | None) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        if not token:  # the legacy accepts a bare token too
            token, scheme = scheme, "bearer"
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "Unauthorized")
        try:
            claims = await self.verifier.verify(token.strip())
        except AuthError:
            raise AuthError(401, "Unauthorized") from None
        aud = claims.get("aud")
        internal = self.internal_audience in (aud if isinstance(aud, list) else [aud])
        principal = claims.get("email") or claims.get("sub")
        if not principal or not isinstance(principal, str):
            raise AuthError(401, "Unauthorized")
        account = (account_header or "").strip()
        if internal:
            role = claims.get("role") if claims.get("role") in ROLE_RANK else "admin"
            return Caller(principal, account or principal, role, True, claims)
        if not account or account == principal:
            return Caller(principal, principal, "admin", False, claims)
        if principal == self.replay_principal:
            return Caller(principal, account, "admin", False, claims)
        role = await _maybe_await(self.membership(account, principal)) if self.membership else None
        if role not in ROLE_RANK:
            raise AuthError(403, f"Forbidden: {principal} is not a collaborator of {account}")
        return Caller(principal, account, str(role), False, claims)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def authenticated(request: Request) -> Caller:
    """Dependency: the verified caller, any role (reads, and ``POST /my`` which is a read)."""
    cached = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    auth: Authenticator | None = getattr(request.app.state, "auth", None)
    if auth is None:
        raise AuthError(401, "Unauthorized")
    who = await auth.authenticate(request.headers.get("authorization"), request.headers.get("account"))
    request.state.caller = who
    return who


async def chariot_caller(request: Request) -> Caller:
    """Dependency like the legacy ``@secured``: any role may read; readonly may not write."""
    who = await authenticated(request)
    if who.role == "readonly" and request.method not in READ_METHODS:
        raise AuthError(403, "Forbidden: the readonly role cannot write")
    return who


class AccountMembership:
    """Membership lookups against the account service's internal API, cached (roles and misses).

    ``GET {account_url}/internal/api/membership?account=&principal=`` → ``{"role": "analyst"}``
    (``{"role": null}`` for no membership). An unreachable account service is a 503, not a 403.
    """

    def __init__(
        self,
        account_url: str,
        *,
        token: Callable[[], str] | None,
        ttl: float = 30.0,
        transport: Any = None,
    ) -> None:
        self.client = ServiceClient(account_url, peer="account", token=token, timeout=3.0, transport=transport)
        self.cache: TTLCache[str] = TTLCache(4096, ttl)

    async def __call__(self, account: str, principal: str) -> str | None:
        cache_key = f"{account}\n{principal}"
        cached = self.cache.get(cache_key)
        if cached is not None:
            return cached or None
        try:
            resp = await self.client.get(
                "/internal/api/membership", params={"account": account, "principal": principal}
            )
        except Exception as exc:  # transport error, open circuit: the answer is unknown, not "no"
            log.warning("membership lookup failed", extra={"error": type(exc).__name__})
            raise AuthError(503, "membership lookup unavailable: try again shortly") from None
        if resp.status_code != 200:
            log.warning("membership lookup refused", extra={"status": resp.status_code})
            raise AuthError(503, "membership lookup unavailable: try again shortly")
        role = (resp.json() or {}).get("role")
        role = role if role in ROLE_RANK else None
        self.cache.set(cache_key, role or "")
        return role

    async def aclose(self) -> None:
        await self.client.aclose()


# ---- feature flags ----------------------------------------------------------------------------


class FlagCache:
    """Per-account settings / flags kept current by ``config.changed`` events (hot reload).

    ``flags.subscription("my-service")`` goes into ``create_chariot_app(subscriptions=[...])``;
    ``flags.get(account, "name", default)`` / ``flags.enabled(account, "name")`` read it. An
    optional async ``loader(account) -> {name: value}`` fills an account on first use.
    """

    def __init__(self, loader: Callable[[str], Awaitable[Mapping[str, Any]]] | None = None,
                 scopes: Sequence[str] = ("setting", "flag")) -> None:
        self.loader = loader
        self.scopes = frozenset(scopes)
        self._values: dict[str, dict[str, Any]] = {}
        self._loaded: set[str] = set()
        # Names changed by events (set or deleted) per account: they beat a later-finishing load.
        self._touched: dict[str, set[str]] = {}

    def apply(self, event: Event) -> None:
        """Fold one ``config.changed`` event into the cache (pure state update)."""
        data = event.data
        if data.get("scope") not in self.scopes:
            return
        values = self._values.setdefault(event.account, {})
        self._touched.setdefault(event.account, set()).add(data["name"])
        if data.get("deleted"):
            values.pop(data["name"], None)
        else:
            values[data["name"]] = data.get("value")

    async def handle(self, event: Event) -> None:
        self.apply(event)

    def subscription(self, group: str) -> Subscription:
        return (group, ["config.changed"], self.handle)

    async def _ensure(self, account: str) -> dict[str, Any]:
        if account not in self._loaded and self.loader is not None:
            loaded = dict(await self.loader(account))
            # Events applied before or during the load are newer than it: they win.
            current = self._values.get(account, {})
            for name in self._touched.get(account, set()):
                loaded.pop(name, None)
            loaded.update(current)
            self._values[account] = loaded
            self._loaded.add(account)
        return self._values.get(account, {})

    async def get(self, account: str, name: str, default: Any = None) -> Any:
        return (await self._ensure(account)).get(name, default)

    async def enabled(self, account: str, name: str) -> bool:
        value = await self.get(account, name, False)
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on", "enabled")
        return bool(value)

    def snapshot(self, account: str) -> dict[str, Any]:
        return dict(self._values.get(account, {}))


# ---- the app factory --------------------------------------------------------------------------


def _handler_arity(fn: Callable[..., Any]) -> int:
    try:
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return 1
    return len(params)


def load_signing_key(secrets_client: Any, secret_id: str) -> SigningKey:
    """The legacy signing key (``{"private_pem", "kid"}`` JSON in Secrets Manager)."""
    data = json.loads(secrets_client.get_secret_value(SecretId=secret_id)["SecretString"])
    return SigningKey(data["private_pem"], data.get("kid") or tokens.kid_of(tokens.public_pem_of(data["private_pem"])))


def create_chariot_app(
    name: str,
    *,
    routers: Sequence[APIRouter] = (),
    tables: Sequence[TableSpec] = (),
    settings: ChariotSettings | None = None,
    subscriptions: Sequence[Subscription] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    membership: MembershipLookup | None = None,
) -> FastAPI:
    """A Chariot service app. Startup creates tables, repos, bus, cache, token verification.

    ``tables`` are declared by name; with ``TABLE_PREFIX`` set the real DynamoDB table is
    ``prefix + name`` but ``app.state.repos[name]`` keeps the declared name. Subscription handlers
    take ``(event)`` or ``(event, app)``. ``membership`` overrides the account-service lookup.
    """
    settings = settings or ChariotSettings.from_env(name)
    specs = [
        TableSpec(settings.table_prefix + t.name, t.partition_key, t.sort_key, t.indexes, t.stream)
        for t in tables
    ]

    def aws_client(kind: str) -> Any:
        return boto3.client(kind, endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)

    async def startup(app: FastAPI) -> None:
        from anyio import to_thread

        ddb = aws_client("dynamodb")
        if specs:
            await to_thread.run_sync(lambda: ensure_tables(ddb, specs))
        app.state.repos = {
            decl.name: AsyncRepository(Repository(ddb, spec)) for decl, spec in zip(tables, specs, strict=True)
        }
        app.state.redis = aioredis.from_url(settings.redis_url) if settings.redis_url else None
        bus_prefix = f"{settings.table_prefix}chariot:"
        if settings.event_bus == "redis" and app.state.redis is not None:
            app.state.bus = RedisStreamsBus(app.state.redis, prefix=bus_prefix)
        else:
            app.state.bus = InProcessBus()
        for group, types, handler in subscriptions:
            if _handler_arity(handler) >= 2:
                async def bound(event: Event, _h: Callable[..., Any] = handler) -> Any:
                    return await _h(event, app)
                app.state.bus.subscribe(group, types, bound)
            else:
                app.state.bus.subscribe(group, types, handler)
        app.state.cache = service_cache(app.state.redis, name, settings)
        await app.state.cache.start()
        await _setup_auth(app, settings, name, aws_client, membership)
        app.state.ready_checks["dynamodb"] = dynamodb_tables_check(
            lambda: aws_client("dynamodb"), [s.name for s in specs]
        )
        if app.state.redis is not None:
            app.state.ready_checks["redis"] = redis_check(app.state.redis)
        app.state.ready_checks["bus"] = bus_check(app.state.bus)

    async def start_bus(app: FastAPI) -> None:
        # After the service's own startup hooks: handlers may need what those hooks create.
        await app.state.bus.start()

    async def stop_bus(app: FastAPI) -> None:
        # First on shutdown: no new events are taken, the ones being handled finish.
        if getattr(app.state, "bus", None) is not None:
            await app.state.bus.stop()

    async def close_clients(app: FastAPI) -> None:
        # Last: the service's own shutdown hooks (e.g. capabilities finishing its jobs, which
        # publish job.completed) still have Redis, the cache and the membership client.
        if getattr(app.state, "membership_client", None) is not None:
            await app.state.membership_client.aclose()
        if getattr(app.state, "cache", None) is not None:
            await app.state.cache.stop()
        if getattr(app.state, "redis", None) is not None:
            await app.state.redis.aclose()

    app = create_service_app(
        name,
        settings=settings,
        routers=routers,
        on_startup=[startup, *on_startup, start_bus],
        on_shutdown=[close_clients, *on_shutdown, stop_bus],  # run in reverse: the mirror of startup
        authenticator=None,
    )
    app.state.auth = None  # set at startup (needs Secrets Manager)
    app.state.repos = {}
    _install_error_handlers(app)
    _serve_components(app)
    return app


async def _setup_auth(
    app: FastAPI,
    settings: ChariotSettings,
    name: str,
    aws_client: Callable[[str], Any],
    membership: MembershipLookup | None,
) -> None:
    from anyio import to_thread

    app.state.signing_key = None
    app.state.service_token = None
    try:
        sm = aws_client("secretsmanager")
        app.state.signing_key = await to_thread.run_sync(lambda: load_signing_key(sm, settings.signing_secret_id))
    except Exception as exc:
        # Fatal only when nothing else can verify tokens.
        if not (settings.jwks_url or settings.jwks_json or settings.jwt_public_key):
            raise RuntimeError(
                f"cannot read the signing key {settings.signing_secret_id!r} from Secrets Manager "
                f"({type(exc).__name__}); set SIGNING_SECRET_ID or JWT_PUBLIC_KEY/JWKS_URL"
            ) from None
        log.warning("signing key not readable; verifying with the configured public key only")
    key: SigningKey | None = app.state.signing_key
    if settings.jwks_url or settings.jwks_json or settings.jwt_public_key:
        keys = KeySource(
            jwks_url=settings.jwks_url,
            jwks=json.loads(settings.jwks_json) if settings.jwks_json else None,
            public_key_pem=settings.jwt_public_key,
            cache_seconds=settings.jwks_cache_seconds,
        )
    else:
        assert key is not None
        # The JWKS form matches the kid; the PEM form also accepts tokens without a kid.
        keys = KeySource(jwks=tokens.jwks([key.public_pem]), public_key_pem=key.public_pem)
    if key is not None:
        app.state.service_token = ServiceTokenProvider(
            key.private_pem, service=name, issuer=settings.issuer, audience=settings.internal_audience, kid=key.kid
        )
    if membership is None and settings.account_url:
        client = AccountMembership(
            settings.account_url, token=app.state.service_token, ttl=settings.membership_cache_seconds
        )
        app.state.membership_client = client
        membership = client
    verifier = TokenVerifier(
        keys, issuer=settings.issuer, audiences=[settings.audience, settings.internal_audience]
    )
    auth = ChariotAuthenticator(verifier, membership, settings.internal_audience)
    auth.replay_principal = settings.replay_principal
    app.state.auth = auth


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            if loc and loc[0] in ("body", "query", "path", "header"):
                loc = loc[1:]
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            parts.append(f"{'.'.join(loc) or 'body'}: {msg}")
        return JSONResponse({"message": "; ".join(parts) or "invalid request"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"method {request.method} is not allowed on {request.url.path}"
        elif exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        return JSONResponse({"message": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ValidationError)
    async def _pydantic(request: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"message": describe(exc)}, status_code=400)

    @app.exception_handler(ValueError)
    async def _value(request: Request, exc: ValueError) -> JSONResponse:
        # Key-format and status rules of chariot_migrate.model raise ValueError with the reason.
        return JSONResponse({"message": str(exc)}, status_code=400)

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse({"message": exc.reason}, status_code=exc.status)


__all__ = [
    "AccountMembership",
    "ApiError",
    "ChariotAuthenticator",
    "ChariotSettings",
    "FlagCache",
    "PlainStore",
    "READ_METHODS",
    "Subscription",
    "adopt",
    "authenticated",
    "bad_request",
    "bucketize",
    "chariot_caller",
    "create_chariot_app",
    "is_replay",
    "json_body",
    "load_signing_key",
    "not_found",
    "openapi_doc",
    "query_param",
    "param",
    "param_flag",
    "parse_model",
    "parse_offset",
    "plain",
    "query_my",
    "unstorable",
    "primary_values",
    "replay_author",
    "replay_values",
]
