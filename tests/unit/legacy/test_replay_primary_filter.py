"""`dual_write.primary_filter` for Chariot: a minted API key's secret never reaches the outbox, and
the key still verifies on the side that receives the replay."""

import json

from chariot_migrate.dual_write.records import PrimaryResult
from chariot_migrate.dual_write.replay_protocol import encode_primary_result
from chariot_migrate.legacy.replay import protect_primary
from chariot_migrate.model import apikeys
from chariot_migrate.model.replay import primary_entity
from chariot_migrate.services.account.routes import new_key_record
from chariot_migrate.services.kit import Caller


def test_a_minted_secret_becomes_a_salted_hash():
    secret = apikeys.new_secret()
    minted = {"key": "#key#k1", "id": "k1", "name": "ci", "secret": secret}
    kept = json.loads(protect_primary(json.dumps(minted).encode()))
    assert "secret" not in kept and secret not in json.dumps(kept)
    assert kept["secret_hash"] == apikeys.hash_secret(secret, kept["salt"])
    assert {k: kept[k] for k in ("key", "id", "name")} == {"key": "#key#k1", "id": "k1", "name": "ci"}


def test_other_answers_pass_unchanged():
    for body in (b'[{"key": "#asset#a#a"}]', b'{"key": "#key#k1", "status": "D"}', b"not json", b""):
        assert protect_primary(body) == body


def test_the_receiving_side_adopts_the_hash_and_the_secret_verifies_there():
    secret = apikeys.new_secret()
    answer = protect_primary(json.dumps({"key": "#key#k1", "id": "k1", "name": "ci", "secret": secret}).encode())
    replay = primary_entity(encode_primary_result(PrimaryResult(status=200, headers=[], body=answer)))
    record, shown = new_key_record(Caller("a@example.com", "a@example.com", "admin"), "ci", None, replay,
                                   "2026-01-01T00:00:00Z")
    assert shown is None and record["id"] == "k1"
    assert apikeys.secret_matches(secret, record)
