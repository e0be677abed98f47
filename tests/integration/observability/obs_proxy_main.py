"""Runs the proxy like `chariot-migrate proxy --port 0 --admin-port 0`, making sure the tracing
add-on is installed (until default_addons() registers it; then this is a plain proxy).

    python obs_proxy_main.py ROUTES STATE

Nothing that imports prometheus_client may be imported before ``serve`` has set
PROMETHEUS_MULTIPROC_DIR (the client picks its value class at import), so the add-on is added in
a uvicorn factory of our own instead of at import time here.
"""

from __future__ import annotations

import sys

import uvicorn

_Config = uvicorn.Config


class _TracingConfig(_Config):
    def __init__(self, app, *args, **kwargs):  # type: ignore[no-untyped-def]
        if app == "chariot_migrate.proxy.app:create_app":
            app = "obs_proxy_main:create_app"
        super().__init__(app, *args, **kwargs)


def create_app():  # type: ignore[no-untyped-def]
    from chariot_migrate.proxy.app import create_app as create_proxy_app
    from chariot_migrate.proxy.tracing import TracingAddon

    app = create_proxy_app()
    if not any(isinstance(a, TracingAddon) for a in app.addons):
        app.addons.append(TracingAddon())
    return app


if __name__ == "__main__":
    from chariot_migrate.proxy.server import ProxyOptions, serve

    uvicorn.Config = _TracingConfig  # type: ignore[misc]
    serve(ProxyOptions(routes=sys.argv[1], state=sys.argv[2], port=0, admin_port=0, workers=1))
