"""Transports for the legacy side: each turns an ``HttpRequest`` into a Lambda invocation the
way API Gateway would (event in, proxy response out) and answers with an ``HttpResponse``.

* ``LocalInvoker``   — the local runtime emulator (no AWS at all, or moto for the handlers' data);
* ``LambdaInvoker``  — boto3 ``Invoke`` against real AWS or a moto server (``MotoStack``);
* ``HttpApiInvoker`` — an existing API Gateway URL over HTTP.

Function errors become 502 ``{"message": "Internal server error"}`` and function timeouts 504
``{"message": "Endpoint request timed out"}``, API Gateway's own answers.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from chariot_migrate.lambda_adapters.events import (
    EventFormat,
    build_event,
    endpoint_timed_out,
    internal_server_error,
    response_from_payload,
)
from chariot_migrate.lambda_adapters.runtime import (
    DUMMY_CREDENTIALS,
    FunctionNotFound,
    LocalLambdaRuntime,
    TooManyRequests,
)
from chariot_migrate.lambda_adapters.spec import FunctionSpec
from chariot_migrate.routes.models import LegacyConfig
from chariot_migrate.transport import HttpRequest, HttpResponse, Transport, UpstreamError

AuthorizerContext = Callable[[HttpRequest], Mapping[str, Any] | None]


class _EventInvoker:
    """Shared part: pick the function, build the event, map the result."""

    def __init__(
        self,
        *,
        event_format: EventFormat = "v1",
        stage: str = "",
        default_function: str | None = None,
        authorizer_context: AuthorizerContext | None = None,
        integration_timeout_s: float = 29.0,
    ) -> None:
        if event_format not in ("v1", "v2"):
            raise ValueError(f"event_format must be 'v1' or 'v2', not {event_format!r}")
        self.event_format: EventFormat = event_format
        self.stage = stage
        self.default_function = default_function
        self.authorizer_context = authorizer_context
        self.integration_timeout_s = integration_timeout_s

    def _function(self, request: HttpRequest) -> str:
        name = request.function or self.default_function
        if not name:
            raise UpstreamError(
                "function", f"no Lambda function serves {request.method} {request.path} and no default is set"
            )
        return name

    def _event(self, request: HttpRequest) -> bytes:
        extra = self.authorizer_context(request) if self.authorizer_context else None
        event = build_event(request, self.event_format, stage=request.stage or self.stage, authorizer=extra)
        return json.dumps(event).encode("utf-8")

    def _response(self, payload: bytes, function_error: str | None, request_id: str) -> HttpResponse:
        if function_error:
            resp = endpoint_timed_out() if _is_timeout(payload) else internal_server_error()
        else:
            resp = response_from_payload(payload, self.event_format)
        resp.headers.append(("x-amzn-requestid", request_id))
        return resp


def _is_timeout(payload: bytes) -> bool:
    try:
        err = json.loads(payload)
    except ValueError:
        return False
    return isinstance(err, dict) and "Task timed out after" in str(err.get("errorMessage", ""))


class LocalInvoker(_EventInvoker):
    """Invokes functions in a ``LocalLambdaRuntime`` (closed with the invoker when ``owns_runtime``)."""

    def __init__(self, runtime: LocalLambdaRuntime, *, owns_runtime: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self.owns_runtime = owns_runtime

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        name = self._function(request)
        event = self._event(request)
        budget = min(timeout, self.integration_timeout_s)
        try:
            async with asyncio.timeout(budget):
                res = await self.runtime.invoke(name, event, request_id=request.request_id or None)
        except TimeoutError:
            # API Gateway gives up at its integration timeout; the function runs on until its own.
            return endpoint_timed_out()
        except FunctionNotFound as e:
            raise UpstreamError("function", f"unknown Lambda function {name!r}: {e}") from None
        except TooManyRequests as e:
            raise UpstreamError("function", f"Lambda function {name!r} is throttled: {e}") from None
        if res.timed_out:
            return endpoint_timed_out()
        return self._response(res.payload, res.function_error, res.request_id)

    async def aclose(self) -> None:
        if self.owns_runtime:
            await self.runtime.aclose()


def _is_loopback(url: str | None) -> bool:
    host = urlsplit(url).hostname if url else None
    return host in ("127.0.0.1", "localhost", "::1")


class LambdaInvoker(_EventInvoker):
    """boto3 ``Invoke`` (RequestResponse) on a thread pool.

    ``qualifier`` is appended to the name (``fn:live``): moto 5.2.5 ignores Invoke's Qualifier.
    Pointing at a loopback endpoint (moto) uses dummy credentials, never a real profile.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        *,
        qualifier: str | None = None,
        max_workers: int = 32,
        client: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint_url = endpoint_url
        self.region = region
        self.qualifier = qualifier
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="lambda-invoker")
        self._client = client or self._make_client(max_workers)

    def _make_client(self, max_workers: int) -> Any:
        import boto3
        from botocore.config import Config

        creds: dict[str, str] = {}
        if _is_loopback(self.endpoint_url):
            creds = {
                "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                "aws_session_token": DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
            }
        session = boto3.session.Session(region_name=self.region, **creds)
        config = Config(
            max_pool_connections=max_workers,
            connect_timeout=5,
            read_timeout=max(60, int(self.integration_timeout_s) + 5),
            retries={"total_max_attempts": 1},  # an Invoke is not idempotent: never resend it
        )
        return session.client("lambda", endpoint_url=self.endpoint_url, config=config)

    def _invoke(self, function_name: str, event: bytes) -> tuple[bytes, str | None, str]:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, ReadTimeoutError

        try:
            resp = self._client.invoke(FunctionName=function_name, Payload=event)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise UpstreamError("function", f"unknown Lambda function {function_name!r}") from None
            raise UpstreamError("function", f"Invoke {function_name!r} failed: {code or e}") from None
        except ReadTimeoutError:
            raise UpstreamError("timeout", f"Invoke {function_name!r} did not answer in time") from None
        except EndpointConnectionError as e:
            raise UpstreamError("connect", f"cannot reach the Lambda endpoint: {e}") from None
        except BotoCoreError as e:
            raise UpstreamError("protocol", f"Invoke {function_name!r} failed: {e}") from None
        request_id = resp.get("ResponseMetadata", {}).get("RequestId", "")
        return resp["Payload"].read(), resp.get("FunctionError"), request_id

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        name = self._function(request)
        if self.qualifier and ":" not in name:
            name = f"{name}:{self.qualifier}"
        event = self._event(request)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(min(timeout, self.integration_timeout_s)):
                payload, function_error, request_id = await loop.run_in_executor(
                    self._executor, self._invoke, name, event
                )
        except TimeoutError:
            return endpoint_timed_out()
        return self._response(payload, function_error, request_id)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class HttpApiInvoker:
    """Forwards to an existing API Gateway URL (``base_url`` includes the stage)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        from chariot_migrate.proxy.upstream import http_transport

        self.base_url = base_url.rstrip("/")
        self._http = http_transport(self.base_url, **kwargs)

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        return await self._http.send(request, timeout)

    async def aclose(self) -> None:
        await self._http.aclose()


# --------------------------------------------------------------------------------------------
# factory


def load_functions(ref: str) -> list[FunctionSpec]:
    """Import ``"module:ATTR"``: a list of ``FunctionSpec`` or a zero-argument callable returning one."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"legacy.functions {ref!r} must look like 'package.module:ATTR'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"legacy.functions {ref!r}: cannot import {module_name!r} ({e})") from e
    try:
        value = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"legacy.functions {ref!r}: module {module_name!r} has no {attr!r}") from None
    if callable(value) and not isinstance(value, list | tuple):
        value = value()
    specs = list(value) if isinstance(value, list | tuple) else None
    if specs is None or not all(isinstance(s, FunctionSpec) for s in specs):
        raise ValueError(f"legacy.functions {ref!r} must be (or return) a list of FunctionSpec")
    return specs


def build_invoker(
    cfg: LegacyConfig,
    *,
    functions: list[FunctionSpec] | None = None,
    authorizer_context: AuthorizerContext | None = None,
) -> Transport:
    """The legacy-side Transport ``routes.yaml``'s ``legacy:`` section describes."""
    common: dict[str, Any] = {
        "event_format": cfg.event_format,
        "stage": cfg.stage,
        "default_function": cfg.default_function,
        "authorizer_context": authorizer_context,
        "integration_timeout_s": cfg.timeout_s,
    }
    if cfg.invoker == "http":
        if not cfg.url:
            raise ValueError("legacy.invoker 'http' needs legacy.url")
        return HttpApiInvoker(cfg.url)
    if cfg.invoker == "lambda":
        return LambdaInvoker(cfg.endpoint_url, cfg.region, **common)
    if cfg.invoker == "local":
        if functions is None:
            if not cfg.functions:
                raise ValueError("legacy.invoker 'local' needs legacy.functions ('module:ATTR')")
            functions = load_functions(cfg.functions)
        runtime = LocalLambdaRuntime(
            functions, aws_endpoint_url=cfg.endpoint_url, region=cfg.region, concurrency=cfg.concurrency
        )
        return LocalInvoker(runtime, owns_runtime=True, **common)
    raise ValueError(f"unknown legacy.invoker {cfg.invoker!r}: use http, local or lambda")
