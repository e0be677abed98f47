"""Service kit: the one platform the eight Chariot services build on (each imports only the kit,
``model`` and itself). App factory, auth, repository, cache, event bus, resilient client, circuit
breaker, saga and 2PC (see ``demo.py`` for a whole service); the Chariot base on top of them
(``chariot.py`` app factory, ``settings``, ``request``, ``openapi``, ``plain_store``, ``tables``,
``replay``, ``membership``, ``flags``, the caches); ``migration`` (the core's mapper interface);
and ``graph/``, what the two graph services share."""

from .app import create_service_app, run_ready_checks, validation_message
from .auth import (
    LEGACY_RULES,
    Authenticator,
    AuthError,
    AuthRules,
    Caller,
    KeySource,
    MembershipLookup,
    ServiceTokenProvider,
    TokenVerifier,
    build_authenticator,
    caller,
    mint_token,
    require_internal,
    require_role,
)
from .breaker import BreakerConfig, CircuitBreaker, CircuitOpenError
from .cache import ReadThroughCache, TTLCache
from .client import RetryPolicy, ServiceClient
from .events import (
    Event,
    InProcessBus,
    InvalidEventError,
    RedisStreamsBus,
    SchemaRegistry,
)
from .repository import (
    AsyncRepository,
    ConflictError,
    IndexSpec,
    InvalidCursorError,
    Page,
    Repository,
    TableSpec,
    ensure_tables,
)
from .saga import Saga, SagaFailed, Step
from .settings import ServiceSettings, SettingsError

__all__ = [
    "LEGACY_RULES",
    "AuthRules",
    "AsyncRepository",
    "AuthError",
    "Authenticator",
    "BreakerConfig",
    "Caller",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConflictError",
    "Event",
    "InProcessBus",
    "IndexSpec",
    "InvalidCursorError",
    "InvalidEventError",
    "KeySource",
    "MembershipLookup",
    "Page",
    "ReadThroughCache",
    "RedisStreamsBus",
    "Repository",
    "RetryPolicy",
    "Saga",
    "SagaFailed",
    "SchemaRegistry",
    "ServiceClient",
    "ServiceSettings",
    "ServiceTokenProvider",
    "SettingsError",
    "Step",
    "TTLCache",
    "TableSpec",
    "TokenVerifier",
    "build_authenticator",
    "caller",
    "create_service_app",
    "ensure_tables",
    "mint_token",
    "require_internal",
    "require_role",
    "run_ready_checks",
    "validation_message",
]
