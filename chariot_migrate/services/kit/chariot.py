"""The Chariot service app factory: :func:`create_chariot_app`, the base every Chariot service builds on.

It is the kit's :func:`~chariot_migrate.services.kit.app.create_service_app` plus:

* tokens are verified with the PUBLIC half of the legacy signing key read from Secrets Manager, so
  tokens issued by the legacy ``/token`` function and by the account service are both valid
  (unless ``JWKS_URL`` / ``JWKS_JSON`` / ``JWT_PUBLIC_KEY`` is set);
* the caller is resolved like the legacy authorizer (``chariot_migrate/legacy/auth.py``) by the
  kit's one :class:`~chariot_migrate.services.kit.auth.Authenticator` with ``LEGACY_RULES``: a bare
  or ``Bearer`` token, the ``account`` header as assume-role (collaborators only, via the account
  service's internal membership API, cached: ``kit/membership.py``), the trusted replay identity
  acting for any account;
* errors in the legacy shape: ``400 {"message": "<field>: <problem>"}``, ``401 {"message":
  "Unauthorized"}``, ``403 {"message": "Forbidden: ..."}``, ``404``, ``405``, ``500 {"message":
  "internal error"}``;
* ``app.state.repos[name]`` (one :class:`AsyncRepository` per declared table), ``app.state.bus``,
  ``app.state.cache``, ``app.state.signing_key``, ``app.state.service_token``.

The rest of the Chariot base lives beside it, one job a module: ``settings.py``
(:class:`ChariotSettings`), ``request.py`` (legacy errors, body, params), ``openapi.py``,
``plain_store.py`` (legacy-shaped rows and ``GET /my``), ``replay.py`` (identifier adoption),
``flags.py`` (:class:`FlagCache`), ``tables.py`` (:class:`LegacyShapedTable`).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chariot_migrate.aws_resources import dynamodb_endpoint
from chariot_migrate.model import tokens
from chariot_migrate.model.errors import describe_errors
from chariot_migrate.model.requests import describe
from chariot_migrate.model.tokens import SigningKey
from chariot_migrate.redis_conn import async_redis

from . import (
    AsyncRepository,
    Authenticator,
    AuthError,
    Event,
    InProcessBus,
    KeySource,
    MembershipLookup,
    RedisStreamsBus,
    Repository,
    ServiceTokenProvider,
    TableSpec,
    TokenVerifier,
    create_service_app,
    ensure_tables,
)
from .auth import LEGACY_RULES
from .events import Subscription
from .membership import AccountMembership
from .openapi import serve_components
from .read_cache import service_cache
from .ready import bus_check, dynamodb_tables_check, redis_check
from .settings import ChariotSettings

log = logging.getLogger("chariot.services")
Hook = Callable[[FastAPI], Any]


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
        endpoint = dynamodb_endpoint(settings.aws_endpoint_url) if kind == "dynamodb" else settings.aws_endpoint_url
        return boto3.client(kind, endpoint_url=endpoint, region_name=settings.aws_region)

    async def startup(app: FastAPI) -> None:
        from anyio import to_thread

        ddb = aws_client("dynamodb")
        if specs:
            await to_thread.run_sync(lambda: ensure_tables(ddb, specs))
        app.state.repos = {
            decl.name: AsyncRepository(Repository(ddb, spec)) for decl, spec in zip(tables, specs, strict=True)
        }
        app.state.redis = async_redis(settings.redis_url) if settings.redis_url else None
        bus_prefix = f"{settings.redis_prefix}chariot:"
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
    serve_components(app)
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
    app.state.auth = Authenticator(verifier, membership, settings.internal_audience, rules=LEGACY_RULES,
                                   replay_principal=settings.replay_principal)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"message": describe_errors(exc.errors())}, status_code=400)

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
