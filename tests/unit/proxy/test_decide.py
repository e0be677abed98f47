"""decide_side: the one side decision. Sticky and monotonic under every override combination,
and each override does what the README says."""

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from chariot_migrate.proxy.decide import DecisionInput, decide_side
from chariot_migrate.rollout.bucketing import bucket, salt_for

SIDES = st.sampled_from(["legacy", "new"])
ACCOUNTS = st.text(alphabet="abcdefghij@.", min_size=1, max_size=12)


@st.composite
def inputs(draw) -> DecisionInput:
    account = draw(st.one_of(st.none(), ACCOUNTS))
    pins = draw(st.dictionaries(ACCOUNTS, SIDES, max_size=2))
    if account is not None and draw(st.booleans()):
        pins[account] = draw(SIDES)
    return DecisionInput(
        salt=draw(st.sampled_from(["svc", "risk-assessment", "custom-salt"])), account=account,
        percent_bp=draw(st.integers(0, 10_000)), pins=pins,
        override=draw(st.one_of(st.none(), SIDES)), retired=draw(st.booleans()),
        random_bucket=draw(st.integers(0, 9_999)), has_new=draw(st.booleans()), has_legacy=draw(st.booleans()),
        pending=frozenset(draw(st.sets(SIDES))), failed=draw(st.one_of(st.none(), SIDES)),
    )


@settings(max_examples=150, deadline=None)
@given(inputs())
def test_sticky_the_same_inputs_always_give_the_same_side_and_new_only_if_it_exists(d):
    assert len({decide_side(d) for _ in range(3)}) == 1
    assert decide_side(replace(d, pins=dict(d.pins))) == decide_side(d)
    assert decide_side(d).side == "legacy" or d.has_new


@settings(max_examples=250, deadline=None)
@given(inputs(), st.integers(0, 10_000), st.integers(0, 10_000))
def test_monotonic_raising_the_percent_never_moves_an_account_back_to_legacy(d, a, b):
    low, high = sorted((a, b))
    if decide_side(replace(d, percent_bp=low)).side == "new":
        assert decide_side(replace(d, percent_bp=high)).side == "new"


def test_precedence_and_reasons():
    salt = salt_for("svc", None)
    base = DecisionInput(salt=salt, account="a@x.com", percent_bp=10_000, pins={})
    assert (decide_side(base).side, decide_side(base).reason) == ("new", "bucket")
    assert decide_side(replace(base, percent_bp=0)).side == "legacy"
    assert decide_side(replace(base, pins={"a@x.com": "legacy"})).reason == "pinned"
    assert decide_side(replace(base, pins={"a@x.com": "legacy"}, override="new")).reason == "override"
    assert decide_side(replace(base, percent_bp=0, retired=True)).reason == "retired"
    assert decide_side(replace(base, account=None, random_bucket=9_999, percent_bp=9_999)).side == "legacy"
    # no new instance: legacy serves, the reason stays
    d = decide_side(replace(base, has_new=False))
    assert (d.side, d.reason) == ("legacy", "bucket")


def test_draining_moves_an_account_away_from_a_side_with_its_writes_pending():
    base = DecisionInput(salt="svc", account="a@x.com", percent_bp=10_000, pins={}, pending=frozenset({"new"}))
    d = decide_side(base)
    assert (d.side, d.reason) == ("legacy", "draining")
    # a pin is never drained; pending both ways: nowhere better to go; no legacy: stays
    assert decide_side(replace(base, pins={"a@x.com": "new"})).side == "new"
    assert decide_side(replace(base, pending=frozenset({"new", "legacy"}))).side == "new"
    assert decide_side(replace(base, has_legacy=False)).side == "new"
    # rollback direction: legacy lacks writes made on new
    d = decide_side(replace(base, percent_bp=0, pending=frozenset({"legacy"})))
    assert (d.side, d.reason) == ("new", "draining")


def test_failover_goes_to_the_other_side_but_never_to_new_with_writes_pending():
    base = DecisionInput(salt="svc", account="a@x.com", percent_bp=10_000, pins={}, failed="new")
    assert (decide_side(base).side, decide_side(base).reason) == ("legacy", "failover")
    to_new = replace(base, percent_bp=0, failed="legacy")
    assert (decide_side(to_new).side, decide_side(to_new).reason) == ("new", "failover")
    assert decide_side(replace(to_new, pending=frozenset({"new"}))).side == "legacy"
    assert decide_side(replace(to_new, has_new=False)).side == "legacy"


def test_one_salt_rule_for_routing_shadow_and_dual_write():
    assert salt_for("svc", None) == "svc" and salt_for("svc", "s2") == "s2"
    assert salt_for("svc", None, "shadow") == "svc:shadow" and salt_for("svc", "s2", "dual") == "s2:dual"
    # independent cohorts: the shadow salt buckets differently from the routing salt
    accounts = [f"u{i}@x.com" for i in range(200)]
    assert [bucket(salt_for("svc", None), a) for a in accounts] != [bucket(salt_for("svc", None, "shadow"), a)
                                                                   for a in accounts]
