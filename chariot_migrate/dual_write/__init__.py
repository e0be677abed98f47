"""Dual writes and data migration: durable ordered outbox, replay worker, backfill/verify/repair,
and ``MigrationRepository`` for library-level dual writes. See DESIGN.md §6.

Generic core: knows nothing about Chariot. Services plug in through ``ServiceMigration``.
"""

from chariot_migrate.dual_write.outbox import Outbox, ServiceStatus, TargetCounts, open_outbox
from chariot_migrate.dual_write.records import (
    PrimaryResult,
    ReplayRecord,
    ReplayRequest,
    Side,
    new_record_id,
    scrub_request_headers,
)
from chariot_migrate.dual_write.replay_protocol import (
    PRIMARY_RESULT_HEADER,
    REPLAY_ACCOUNT_HEADER,
    REPLAY_HEADER,
    build_replay_request,
    decode_primary_result,
    encode_primary_result,
)
from chariot_migrate.dual_write.worker import ReplayWorker

__all__ = [
    "Outbox",
    "PRIMARY_RESULT_HEADER",
    "PrimaryResult",
    "REPLAY_ACCOUNT_HEADER",
    "REPLAY_HEADER",
    "ReplayRecord",
    "ReplayRequest",
    "ReplayWorker",
    "ServiceStatus",
    "Side",
    "TargetCounts",
    "build_replay_request",
    "decode_primary_result",
    "encode_primary_result",
    "new_record_id",
    "open_outbox",
    "scrub_request_headers",
]
