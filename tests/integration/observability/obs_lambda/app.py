"""A tiny legacy Lambda for the observability test: answers with the trace context it received."""

import json
import os


def handler(event, context):
    headers = event.get("headers") or {}
    seen = {"event_traceparent": headers.get("traceparent"), "env_traceparent": os.environ.get("TRACEPARENT"),
            "path": event.get("path"), "method": event.get("httpMethod")}
    print(json.dumps(seen))  # a legacy handler logging its trace context
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(seen)}
