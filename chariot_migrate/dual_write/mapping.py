"""Finding a service's data mapper (its ``migration.py``) from routes.yaml, by import string."""

from __future__ import annotations

import importlib
from typing import Any


class MappingError(ValueError):
    """The service declares a mapper that cannot be loaded; the message says which."""


def mapper_ref(service_cfg: Any) -> str | None:
    """``services.X.migration``, else ``<app package>.migration``; None when the service has no app."""
    if service_cfg.migration:
        return service_cfg.migration
    if service_cfg.app:
        return service_cfg.app.rsplit(".", 1)[0].partition(":")[0] + ".migration"
    return None


def load_mapper(config: Any, service: str, *, required: bool = True) -> Any | None:
    """The service's ``ServiceMigration``; with ``required`` False, None when it declares none."""
    svc = config.services.get(service)
    if svc is None:
        raise MappingError(f"unknown service {service!r}; routes.yaml knows: {', '.join(sorted(config.services))}")
    ref = mapper_ref(svc)
    if ref is None:
        if not required:
            return None
        raise MappingError(f"service {service!r} declares no migration mapper (services.{service}.migration)")
    module, _, attr = ref.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if not required and e.name == module and not svc.migration:
            return None  # the default location is empty: the service keeps no data of its own
        raise MappingError(f"service {service!r}: no migration module {module!r}") from None
    if attr:
        return getattr(mod, attr)
    for name in ("MIGRATION", "migration"):
        if hasattr(mod, name):
            obj = getattr(mod, name)
            return obj() if callable(obj) and not hasattr(obj, "legacy_prefixes") else obj
    raise MappingError(f"{module} has no MIGRATION object")


def read_models_fed_by(config: Any, service: str) -> list[Any]:
    """Read-model mappers of any configured service that ``service``'s data feeds: the objects in
    a mapper module's ``READ_MODELS`` whose ``fed_by`` names ``service``. A backfill of
    ``service`` runs them after its own pass, so the read models count what it copied (the core
    finds them through routes.yaml and import strings; it never imports a service)."""
    found: list[Any] = []
    for name in sorted(config.services):
        ref = mapper_ref(config.services[name])
        if ref is None:
            continue
        try:
            mod = importlib.import_module(ref.partition(":")[0])
        except ModuleNotFoundError:
            continue  # the service keeps no data of its own
        found += [m for m in getattr(mod, "READ_MODELS", []) if service in getattr(m, "fed_by", ())]
    return found
