"""The account service's own tables (database-per-service), same ``(username, key)`` layout as
the legacy table so rows, keys and ``GET /my`` offsets are identical on both sides.

* ``account-members``: ``#account#…`` rows — collaborators (+ their mirror row in the member's
  partition) and the integration read model fed by ``integration.linked`` events;
* ``account-keys``: ``#key#…`` API keys, plus the ``#apikeys`` id → owner lookup partition;
* ``account-audit``: the append-only audit trail ``#audit#<time>#<event id>``.

Methods block (boto3): routes call them through ``anyio.to_thread``.
"""

from __future__ import annotations

from chariot_migrate.model.keys import account_key
from chariot_migrate.services.kit import TableSpec
from chariot_migrate.services.kit.plain_store import PlainStore

MEMBERS = "account-members"
KEYS = "account-keys"
AUDIT = "account-audit"
LEGACY = "legacy"  # the legacy single table (read-only: API keys not migrated yet)
TABLES = [TableSpec(MEMBERS), TableSpec(KEYS), TableSpec(AUDIT)]
# The tables GET /my reads, partition by partition through app.state.cache: every write to them
# invalidates its partition's entry (see services/kit/partition_cache.py).
MY_TABLES = frozenset({MEMBERS, KEYS})


class AccountStore(PlainStore):
    def role_of(self, account: str, principal: str) -> str | None:
        """The collaborator role ``principal`` holds in ``account`` (None when not a member)."""
        try:
            key = account_key(account, principal, "")
        except ValueError:
            return None
        row = self.get(MEMBERS, account, key)
        role = row.get("role") if row else None
        return str(role) if role else None
