"""405 by default (issue 15 item 15) must never hide a route the legacy estate serves: every
(method, resource) of the legacy functions is allowed on its path by routes.yaml."""

from __future__ import annotations

import re
from pathlib import Path

from chariot_migrate.legacy.functions import ROUTE_FUNCTIONS
from chariot_migrate.routes.loader import load_table

ROOT = Path(__file__).resolve().parents[3]


def test_every_legacy_route_is_allowed_by_routes_yaml():
    table = load_table(ROOT / "routes.yaml")
    hidden = []
    for method, resource in ROUTE_FUNCTIONS:
        path = re.sub(r"\{[^}]+\}", "x", resource)
        allowed = set().union(*(r.methods for r in table.routes_on(path)))
        if method not in allowed:
            hidden.append(f"{method} {resource}")
    assert hidden == []
