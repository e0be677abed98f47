"""Service-to-service auth for gRPC: the same internal-audience token as ``/internal/api``.

A call carries ``authorization: Bearer <token>`` and ``account: <account>`` metadata; the
service's own :class:`~.auth.Authenticator` verifies it. A missing or invalid token, or a user's
(not a service's) token, is ``UNAUTHENTICATED`` with the reason; never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc

from .auth import Authenticator, AuthError, Caller


def metadata_value(metadata: Iterable[tuple[str, Any]] | None, name: str) -> str | None:
    for key, value in metadata or ():
        if key.lower() == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


async def internal_caller(context: grpc.aio.ServicerContext, auth: Authenticator | None) -> Caller:
    """The peer service and the account it acts for; aborts the call otherwise."""
    if auth is None:  # the app has not finished starting
        await context.abort(grpc.StatusCode.UNAVAILABLE, "starting")
        raise AssertionError("unreachable: abort() raises")
    metadata = context.invocation_metadata()
    try:
        who = await auth.authenticate(metadata_value(metadata, "authorization"), metadata_value(metadata, "account"))
    except AuthError as e:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, e.reason)
    if not who.internal:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "an internal (service-to-service) token is required")
    return who


def call_metadata(account: str, token: Callable[[], str] | None) -> tuple[tuple[str, str], ...]:
    """What a client sends: the account, its service token, and the trace context."""
    from .context import outbound_headers

    pairs = [("account", account)]
    if token is not None:
        pairs.append(("authorization", f"Bearer {token()}"))
    pairs += [(k.lower(), v) for k, v in outbound_headers().items()]
    return tuple(pairs)
