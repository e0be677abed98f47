"""The configuration service's table: ``#setting#<name>`` and ``#configuration#<name>`` rows in
the legacy ``(username, key)`` layout (so ``GET /my`` rows and offsets match the legacy)."""

from __future__ import annotations

from chariot_migrate.services.kit import TableSpec
from chariot_migrate.services.kit.plain_store import PlainStore

SETTINGS = "configuration-settings"
TABLES = [TableSpec(SETTINGS)]


class ConfigurationStore(PlainStore):
    pass
