"""model.replay reads exactly what the toolkit's replay worker writes (the legacy Lambda package
cannot import the toolkit, so the decoder is separate — this keeps the two in step)."""

import json

from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.dual_write.records import PrimaryResult
from chariot_migrate.dual_write.replay_protocol import encode_primary_result
from chariot_migrate.model.replay import author, primary_entity

scalars = st.one_of(st.text(min_size=1, max_size=20), st.integers(), st.booleans())
entities = st.dictionaries(st.text(min_size=1, max_size=10), scalars, min_size=1, max_size=6)


@given(entities, st.sampled_from(["bare", "list", "bucket"]))
def test_entity_round_trips_through_the_worker_encoding(entity, shape):
    body = {"bare": entity, "list": [entity], "bucket": {"risks": [entity]}}[shape]
    header = encode_primary_result(PrimaryResult(status=200, headers=[], body=json.dumps(body).encode()))
    assert primary_entity(header) == entity


def test_non_2xx_truncated_and_garbage_adopt_nothing():
    bad = encode_primary_result(PrimaryResult(status=500, headers=[], body=b'{"key": "k"}'))
    assert primary_entity(bad) == {} and primary_entity("z1.!!!") == {} and primary_entity(None) == {}
    many = encode_primary_result(PrimaryResult(status=200, headers=[], body=b'[{"a": 1}, {"a": 2}]'))
    assert primary_entity(many) == {}


def test_author_is_the_last_history_entry():
    assert author({"history": [{"by": "a"}, {"by": "b@x.com"}]}) == "b@x.com"
    assert author({}) is None
