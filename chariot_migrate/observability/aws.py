"""Spans for AWS SDK calls (DynamoDB, S3, ...) through botocore's event hooks on one client.

A thin alternative to the contrib botocore instrumentation: no global patching, and nothing is
registered while tracing is off (the client then pays nothing).
"""

from __future__ import annotations

from typing import Any

from . import tracing

_SPAN_KEY = "chariot_otel_span"


def _before_call(model: Any = None, params: Any = None, context: Any = None, **_: Any) -> None:
    if context is None or model is None:
        return
    service = model.service_model.service_name
    attrs: dict[str, Any] = {"rpc.system": "aws-api", "rpc.service": service, "rpc.method": model.name}
    if service == "dynamodb" and isinstance(params, dict) and isinstance(params.get("TableName"), str):
        attrs["aws.dynamodb.table_names"] = [params["TableName"]]
    context[_SPAN_KEY] = tracing.start_span(f"{service}.{model.name}", kind=tracing.SpanKind.CLIENT,
                                            attributes=attrs)


def _after_call(http_response: Any = None, context: Any = None, **_: Any) -> None:
    s = context.pop(_SPAN_KEY, None) if context is not None else None
    if s is None:
        return
    status = getattr(http_response, "status_code", None)
    tracing.end_span(s, error=f"HTTP {status}" if isinstance(status, int) and status >= 400 else None,
                     attributes={"http.response.status_code": status} if isinstance(status, int) else None)


def _after_call_error(exception: BaseException | None = None, context: Any = None, **_: Any) -> None:
    s = context.pop(_SPAN_KEY, None) if context is not None else None
    if s is not None:
        tracing.end_span(s, error=exception or "call failed")


def instrument_client(client: Any) -> Any:
    """Add span hooks to a boto3/botocore client (idempotent); a no-op while tracing is off."""
    if not tracing.tracing_enabled() or getattr(client, "_chariot_traced", False):
        return client
    events = client.meta.events
    service = client.meta.service_model.service_name
    # before-parameter-build sees the API parameters (before-call only the serialised body).
    events.register(f"before-parameter-build.{service}", _before_call, unique_id="chariot-otel-before")
    events.register(f"after-call.{service}", _after_call, unique_id="chariot-otel-after")
    events.register(f"after-call-error.{service}", _after_call_error, unique_id="chariot-otel-error")
    try:
        client._chariot_traced = True
    except AttributeError:  # a client type that forbids new attributes: unique_id still dedupes
        pass
    return client
