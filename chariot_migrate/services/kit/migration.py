"""The toolkit core's data-migration interface, as services see it.

Each service's ``migration.py`` implements :class:`ServiceMigration` (the mapper the generic
backfill/verify/repair engine in :mod:`chariot_migrate.dual_write.data` talks to) and names its
new tables with :class:`TableSpec`. Services import them from here, so a service package depends
on the kit and ``model`` only; the core stays unaware of services (DESIGN §2).
"""

from chariot_migrate.dual_write.migration import Item, ServiceMigration, TableSpec

__all__ = ["Item", "ServiceMigration", "TableSpec"]
